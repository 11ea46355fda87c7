package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/discovery-platform/discovery/apps"
	"github.com/discovery-platform/discovery/deployer/process/supervisor"
)

// tailLog returns up to the last n bytes of a replica's output: the end of
// log.1 followed by log, as the supervisor rotates them. Missing files (a
// replica that never wrote) are empty.
//
// The supervisor may rotate while the two are opened; the pair is only used
// if log.1 is still the same file once both are open (so log is the file that
// follows it), else opened again. Under a flood that rotates faster than
// that, only log is read.
func tailLog(dir string, n int64) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		old, err := openIfExists(filepath.Join(dir, supervisor.OldLogFile))
		if err != nil {
			return nil, err
		}
		cur, err := openIfExists(filepath.Join(dir, supervisor.LogFile))
		if err != nil {
			closeFile(old)
			return nil, err
		}
		if attempt == 4 {
			closeFile(old)
			old = nil
		}
		if attempt < 4 && !stillAt(filepath.Join(dir, supervisor.OldLogFile), old) {
			closeFile(old)
			closeFile(cur)
			continue
		}
		b, err := tailFile(cur, n)
		if rest := n - int64(len(b)); err == nil && rest > 0 {
			var ob []byte
			ob, err = tailFile(old, rest)
			b = append(ob, b...)
		}
		closeFile(old)
		closeFile(cur)
		return b, err
	}
}

// stillAt reports whether path still names f (or, for a nil f, nothing).
func stillAt(path string, f *os.File) bool {
	st, err := os.Stat(path)
	if f == nil {
		return errors.Is(err, fs.ErrNotExist)
	}
	fst, ferr := f.Stat()
	return err == nil && ferr == nil && os.SameFile(st, fst)
}

func closeFile(f *os.File) {
	if f != nil {
		_ = f.Close()
	}
}

func openIfExists(path string) (*os.File, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return f, err
}

// tailFile returns up to the last n bytes of f; a nil f is empty.
func tailFile(f *os.File, n int64) ([]byte, error) {
	if f == nil {
		return nil, nil
	}
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
func (l LogReader) Logs(_ context.Context, id apps.ReplicaID, tail int) ([]byte, error) {
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
	return tailLog(dir, int64(tail))
}
