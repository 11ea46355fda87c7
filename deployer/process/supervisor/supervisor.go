// Package supervisor is the program that watches over one replica of the
// process runtime, the role conmon plays for CRI-O. The platform starts one
// per replica (cmd/discovery-supervisor, in a new session) with the replica's
// state directory as its only argument; it starts the replica as the spec
// says, keeps its output in a bounded log, and records how it ended, so all of
// that works while no platform runs.
//
// It imports the standard library only, which keeps it small: measured idle
// beside a running replica (Go 1.26, linux/amd64, started as the platform
// starts it, GOMAXPROCS=1), VmRSS 3.0 MB of which RssAnon 0.76 MB is its own
// and the rest pages of its 3.5 MB executable, shared by every supervisor
// (Pss 1.0 MB each with ten running). The platform binary, for comparison,
// holds RssAnon 5.9 MB once its package initialisers have run.
//
// It never talks to the network and reads nothing but its spec and
// /proc/self/stat.
//
// The state directory holds, besides the platform's own files:
//
//	spec.json  Spec, written by the platform before the start (0600)
//	pid        "<pid> <start ticks>" of the supervisor, written before anything else
//	log, log.1 the replica's stdout and stderr, each at most Spec.LogLimit bytes
//	exit       how the replica ended ("exit status 1", "signal: killed")
//
// If file descriptor StatusFD is a pipe when it starts, the supervisor writes
// one line to it and closes it: "ok" once the replica runs, or "error: ..."
// when it could not start it. The platform waits for that line, so a start
// that fails (no such program, permission denied) fails the platform's Start.
package supervisor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Files of a replica's state directory that the supervisor reads or writes.
const (
	SpecFile   = "spec.json"
	PIDFile    = "pid"
	ExitFile   = "exit"
	LogFile    = "log"
	OldLogFile = "log.1"
)

// StatusFD is the descriptor the supervisor reports its start on.
const StatusFD = 3

// Spec is what one supervisor runs.
type Spec struct {
	// Path is the program to run, an absolute path (the platform resolves a
	// bare command name in the replica's PATH). Argv[0] is what the program
	// sees as its name.
	Path string   `json:"path"`
	Argv []string `json:"argv"`
	// Env is the replica's complete environment: nothing is inherited.
	Env []string `json:"env"`
	// Dir is the replica's working directory.
	Dir string `json:"dir"`
	// User, when set, is the uid and gid the replica runs as, with no
	// supplementary groups; nil runs it as the supervisor's own user.
	User *User `json:"user,omitempty"`
	// LogLimit bounds each of the two log files, in bytes.
	LogLimit int64 `json:"log_limit"`
}

// User is a numeric identity a replica runs as.
type User struct {
	UID uint32 `json:"uid"`
	GID uint32 `json:"gid"`
}

// WriteSpec writes the spec into dir, readable by its owner only: it holds the
// replica's environment, which may hold secrets.
func WriteSpec(dir string, s Spec) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, SpecFile), append(b, '\n'))
}

func readSpec(dir string) (Spec, error) {
	var s Spec
	b, err := os.ReadFile(filepath.Join(dir, SpecFile))
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("%s: %w", SpecFile, err)
	}
	if len(s.Argv) == 0 {
		return s, fmt.Errorf("%s: empty argv", SpecFile)
	}
	if s.Path == "" {
		s.Path = s.Argv[0]
	}
	if s.Env == nil {
		s.Env = []string{} // nil would make os/exec pass the supervisor's own
	}
	return s, nil
}

// ReadPID returns the pid and start time (clock ticks since boot, field 22 of
// /proc/<pid>/stat) the supervisor recorded in dir; an error wrapping
// fs.ErrNotExist when it has not (yet).
func ReadPID(dir string) (pid int, ticks uint64, err error) {
	b, err := os.ReadFile(filepath.Join(dir, PIDFile))
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("%s: malformed %q", PIDFile, b)
	}
	pid, err1 := strconv.Atoi(f[0])
	ticks, err2 := strconv.ParseUint(f[1], 10, 64)
	if err := errors.Join(err1, err2); err != nil || pid <= 0 {
		return 0, 0, fmt.Errorf("%s: malformed %q", PIDFile, b)
	}
	return pid, ticks, nil
}

// ReadExit returns how the replica ended, as the supervisor recorded it, or ""
// if it has not.
func ReadExit(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, ExitFile))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// DescribeWait words an exit the way os/exec does ("exit status 1",
// "signal: killed").
func DescribeWait(ws syscall.WaitStatus) string {
	switch {
	case ws.Exited():
		return "exit status " + strconv.Itoa(ws.ExitStatus())
	case ws.Signaled():
		s := "signal: " + ws.Signal().String()
		if ws.CoreDump() {
			s += " (core dumped)"
		}
		return s
	}
	return fmt.Sprintf("wait status %#x", uint32(ws))
}

// writeAtomic replaces path with data (a temp file, synced, renamed), so a
// reader sees the old or the new content, never half, and a crash leaves one
// of the two.
func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}

// startTicks reads this process's start time from /proc/self/stat: "pid
// (comm) state ..." where comm may hold spaces and parentheses, so fields are
// counted from the last ')'.
func startTicks() (uint64, error) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc/self/stat")
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3
	if len(f) < 20 {
		return 0, errors.New("malformed /proc/self/stat")
	}
	return strconv.ParseUint(f[22-3], 10, 64)
}
