package kubenode

import (
	"bytes"
	"fmt"
	"os"
	"sync"
)

// logStore keeps one pod's output (stdout and stderr of every run of its
// container, in order) in a file of bounded size, and lets readers follow it.
// Offsets are positions in the whole stream ever written; when the file
// passes max it keeps its newest half (from a line start) and the stream
// offset of its first byte moves on, so a follower that fell behind skips
// what was dropped instead of reading garbage.
type logStore struct {
	path string
	max  int64

	mu       sync.Mutex
	f        *os.File
	size     int64         // bytes in the file
	base     int64         // stream offset of the file's first byte
	changed  chan struct{} // closed and replaced on every write and every end of a run
	instance int           // number of the current (or last) run, 0 before the first
	open     bool          // whether the current run's output is still open
}

func newLogStore(path string, max int64) (*logStore, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_APPEND|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	return &logStore{path: path, max: max, f: f, changed: make(chan struct{})}, nil
}

// begin marks the start of a new run of the container and returns its number.
func (s *logStore) begin() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.instance++
	s.open = true
	s.notifyLocked()
	return s.instance
}

// end marks the output of run instance as closed (its pipe reached EOF).
func (s *logStore) end(instance int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.instance == instance {
		s.open = false
		s.notifyLocked()
	}
}

// Write appends p, then trims the file if it grew past max.
func (s *logStore) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return len(p), nil // removed: the pod is gone, drop its late output
	}
	n, err := s.f.Write(p)
	s.size += int64(n)
	if err == nil && s.size > s.max {
		err = s.trimLocked()
	}
	s.notifyLocked()
	return n, err
}

func (s *logStore) trimLocked() error {
	keep := make([]byte, s.max/2)
	if _, err := s.f.ReadAt(keep, s.size-int64(len(keep))); err != nil {
		return fmt.Errorf("trim log: %w", err)
	}
	if i := bytes.IndexByte(keep, '\n'); i >= 0 && i+1 < len(keep) {
		keep = keep[i+1:]
	}
	if err := s.f.Truncate(0); err != nil {
		return fmt.Errorf("trim log: %w", err)
	}
	if _, err := s.f.Write(keep); err != nil {
		return fmt.Errorf("trim log: %w", err)
	}
	s.base += s.size - int64(len(keep))
	s.size = int64(len(keep))
	return nil
}

func (s *logStore) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// logChunk is what a reader gets: the bytes from an offset to the end, the
// offset to read from next, a channel closed on the next change, and the run
// state at the time of reading.
type logChunk struct {
	data     []byte
	next     int64
	changed  <-chan struct{}
	instance int
	open     bool
}

// readFrom returns the stream from off (or from the oldest kept byte, if off
// was dropped) to its end.
func (s *logStore) readFrom(off int64) (logChunk, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := logChunk{next: s.base + s.size, changed: s.changed, instance: s.instance, open: s.open}
	if s.f == nil {
		return c, os.ErrClosed
	}
	off = max(off, s.base)
	if off >= s.base+s.size {
		return c, nil
	}
	c.data = make([]byte, s.base+s.size-off)
	if _, err := s.f.ReadAt(c.data, off-s.base); err != nil {
		return logChunk{}, fmt.Errorf("read log: %w", err)
	}
	return c, nil
}

// remove deletes the file; later writes are dropped and reads fail.
func (s *logStore) remove() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return
	}
	_ = s.f.Close()
	_ = os.Remove(s.path)
	s.f = nil
	s.open = false
	s.notifyLocked()
}
