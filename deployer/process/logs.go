package process

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/discovery-platform/discovery/deployer"
)

// boundLog keeps a replica's log file bounded: once it passes 2*limit bytes it
// is cut back to its last limit bytes (from the first whole line on). The
// replica keeps its own descriptor, opened O_APPEND, so its next write lands
// at the new end of the file.
//
// This races with the replica's writes, and that is accepted: output written
// between reading the tail and writing it back is overwritten (a few lines
// lost), in exchange for never stopping or piping the replica.
func boundLog(path string, limit int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	if size <= 2*limit {
		return nil
	}
	keep := make([]byte, limit)
	if _, err := f.ReadAt(keep, size-limit); err != nil && err != io.EOF {
		return err
	}
	if i := bytes.IndexByte(keep, '\n'); i >= 0 && i < len(keep)-1 {
		keep = keep[i+1:]
	}
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err = f.WriteAt(keep, 0)
	return err
}

// tailFile returns up to the last n bytes of the file at path; a missing file
// (a replica that never wrote) is empty.
func tailFile(path string, n int64) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	off := max(st.Size()-n, 0)
	b := make([]byte, st.Size()-off)
	k, err := f.ReadAt(b, off)
	if err != nil && err != io.EOF {
		return nil, err
	}
	return b[:k], nil
}

// LogReader reads replicas' logs straight from a state directory, without a
// Runtime: API instances that are not the reconciler's leader serve logs so.
type LogReader struct{ StateDir string }

// Logs returns up to tail bytes of the end of a replica's output.
func (l LogReader) Logs(_ context.Context, id deployer.ReplicaID, tail int) ([]byte, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	if tail <= 0 {
		tail = 1 << 20
	}
	dir := filepath.Join(l.StateDir, dirName(id))
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("replica %s: %w", id.Replica, ErrNotFound)
	}
	return tailFile(filepath.Join(dir, logFile), int64(tail))
}
