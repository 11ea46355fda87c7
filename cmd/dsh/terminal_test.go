package main

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
)

// terminal is dsh running on a pseudo-terminal, read with deadlines.
type terminal struct {
	t    *testing.T
	cmd  *exec.Cmd
	pty  *os.File
	mu   sync.Mutex
	buf  strings.Builder // everything read, cleaned of terminal control
	read int             // how far expect has consumed buf
	more chan struct{}   // signalled on each read
	done chan struct{}   // closed when dsh has exited
}

func (o *operator) terminal() *terminal {
	o.t.Helper()
	bin, _ := binaries(o.t)
	cmd := exec.Command(bin)
	cmd.Env = o.Env
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 50, Cols: 200})
	if err != nil {
		o.t.Fatal(err)
	}
	term := &terminal{t: o.t, cmd: cmd, pty: f, more: make(chan struct{}, 1), done: make(chan struct{})}
	go term.copy()
	go func() { _ = cmd.Wait(); close(term.done) }()
	o.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-term.done
		f.Close()
		if o.t.Failed() {
			o.t.Logf("terminal:\n%s", term.all())
		}
	})
	return term
}

// control matches what the line editor draws: escape sequences, and the
// carriage returns and backspaces it redraws the prompt with.
var control = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]| \x08|\r|\x08|\x07`)

func (term *terminal) copy() {
	b := make([]byte, 4096)
	for {
		n, err := term.pty.Read(b)
		if n > 0 {
			term.mu.Lock()
			term.buf.WriteString(control.ReplaceAllString(string(b[:n]), ""))
			term.mu.Unlock()
			select {
			case term.more <- struct{}{}:
			default:
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrClosed) {
				// EIO: dsh closed its side.
				return
			}
			return
		}
	}
}

func (term *terminal) all() string {
	term.mu.Lock()
	defer term.mu.Unlock()
	return term.buf.String()
}

// send types text (\r is Enter, \t is Tab, \x03 is Ctrl-C, \x04 Ctrl-D).
func (term *terminal) send(text string) {
	term.t.Helper()
	if _, err := term.pty.Write([]byte(text)); err != nil {
		term.t.Fatalf("type %q: %v", text, err)
	}
}

// prompt is the line editor's prompt, for a new input or a continuation,
// waiting for input (nothing typed after it yet).
const prompt = `(dsh \S+> |\.\.\. )$`

// typeLine waits for the prompt, then types text and Enter. Waiting matters:
// the line editor has the terminal in raw mode only while it reads, and
// typed ahead in cooked mode, Ctrl-D would be the end of input.
func (term *terminal) typeLine(text string) {
	term.t.Helper()
	term.expect(prompt, 10*time.Second)
	term.send(text + "\r")
}

// expect waits (at most within) until what dsh printed since the last match
// matches re, and returns the submatches.
func (term *terminal) expect(re string, within time.Duration) []string {
	term.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		term.mu.Lock()
		rest := term.buf.String()[term.read:]
		if loc := rx.FindStringSubmatchIndex(rest); loc != nil {
			m := make([]string, len(loc)/2)
			for i := range m {
				if loc[2*i] >= 0 {
					m[i] = rest[loc[2*i]:loc[2*i+1]]
				}
			}
			term.read += loc[1]
			term.mu.Unlock()
			return m
		}
		term.mu.Unlock()
		select {
		case <-term.more:
		case <-deadline.C:
			term.t.Fatalf("dsh did not print %q within %s; since the last match it printed:\n%s", re, within, rest)
		}
	}
}

// exited waits for dsh to exit and returns its status.
func (term *terminal) exited(within time.Duration) int {
	term.t.Helper()
	select {
	case <-term.done:
		return term.cmd.ProcessState.ExitCode()
	case <-time.After(within):
		term.t.Fatalf("dsh did not exit within %s", within)
		return -1
	}
}
