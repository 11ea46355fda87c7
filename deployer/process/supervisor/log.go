package supervisor

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
)

// Log is a replica's output on disk, bounded at every moment: the current
// file (LogFile) never passes the limit; when a write would take it past, it
// is renamed to OldLogFile (replacing the one before) and a new current file
// begins. The two together never exceed twice the limit, and since the
// supervisor is their only writer nothing is lost to a race with a trimmer.
//
// Rotation happens at a line end when one fits, so each file starts on a
// whole line; a line longer than the limit is cut (the bytes past limit-1 are
// dropped, its newline kept), so one line never spans more than a file.
type Log struct {
	dir   string
	limit int64
	f     *os.File
	// size is the current file's length; line is how many bytes the line
	// being written has had so far, dropped ones included.
	size, line int64
	// scratch holds a chunk with over-long lines cut.
	scratch []byte
}

// OpenLog opens (or creates) dir/LogFile for appending, bounded at limit
// bytes per file. A limit below 2 is taken as 2: one byte of text and its
// newline.
func OpenLog(dir string, limit int64) (*Log, error) {
	l := &Log{dir: dir, limit: max(limit, 2)}
	if err := l.open(0); err != nil {
		return nil, err
	}
	if st, err := l.f.Stat(); err == nil {
		l.size = st.Size()
	}
	return l, nil
}

func (l *Log) open(flag int) error {
	f, err := os.OpenFile(filepath.Join(l.dir, LogFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND|flag, 0o600)
	if err != nil {
		return err
	}
	l.f = f
	return nil
}

// Write stores p, cut and rotated as the type describes. It reports len(p)
// written even when it dropped bytes of an over-long line: the caller has
// nothing to retry.
func (l *Log) Write(p []byte) (int, error) {
	n := len(p)
	out := l.cut(p)
	for len(out) > 0 {
		room := l.limit - l.size
		if int64(len(out)) <= room {
			return n, l.write(out)
		}
		// Fill the file up to its last line end that fits (or, when a single
		// partial line fills an empty file, up to the limit), then rotate.
		var k int64
		if room > 0 {
			if j := bytes.LastIndexByte(out[:room], '\n'); j >= 0 {
				k = int64(j + 1)
			} else if l.size == 0 {
				k = room
			}
		}
		if k > 0 {
			if err := l.write(out[:k]); err != nil {
				return n, err
			}
			out = out[k:]
		}
		if err := l.rotate(); err != nil {
			return n, err
		}
	}
	return n, nil
}

func (l *Log) write(b []byte) error {
	if l.f == nil {
		// A failed rotation left no file open: try again now.
		if err := l.open(os.O_TRUNC); err != nil {
			return err
		}
		l.size = 0
	}
	k, err := l.f.Write(b)
	l.size += int64(k)
	return err
}

// rotate makes the current file the old one and starts an empty current one.
func (l *Log) rotate() error {
	if l.f != nil {
		err := l.f.Close()
		l.f = nil
		if err != nil {
			return err
		}
	}
	if err := os.Rename(filepath.Join(l.dir, LogFile), filepath.Join(l.dir, OldLogFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := l.open(os.O_TRUNC); err != nil {
		return err
	}
	l.size = 0
	return nil
}

// cut drops the bytes of each line past limit-1, keeping newlines. It returns
// p itself when no line in it is too long.
func (l *Log) cut(p []byte) []byte {
	maxLine := l.limit - 1
	if l.line+int64(len(p)) <= maxLine {
		if i := bytes.LastIndexByte(p, '\n'); i >= 0 {
			l.line = int64(len(p) - 1 - i)
		} else {
			l.line += int64(len(p))
		}
		return p
	}
	out := l.scratch[:0]
	for len(p) > 0 {
		seg, i := p, bytes.IndexByte(p, '\n')
		if i >= 0 {
			seg = p[:i]
		}
		keep := min(int64(len(seg)), max(maxLine-l.line, 0))
		out = append(out, seg[:keep]...)
		l.line += int64(len(seg))
		if i < 0 {
			break
		}
		out = append(out, '\n')
		l.line = 0
		p = p[i+1:]
	}
	l.scratch = out
	return out
}

// Close closes the current file.
func (l *Log) Close() error {
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
