package process

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/discovery-platform/discovery/apps"
)

// On disk, each replica has a directory <StateDir>/<tenant>.<app>.<revision>.<replica>
// (the parts are DNS labels, so '.' separates them unambiguously) holding
// metaFile (the platform's record), workDir (the replica's working
// directory, its HOME and TMPDIR) and the files the platform and the
// supervisor share (package supervisor: spec.json, pid, log, log.1, exit).
// The directory, not the platform's memory, is the record of a replica: it
// survives the platform and is what New adopts.
const (
	metaFile = "meta.json"
	workDir  = "work"
)

// meta is a replica's identity and last known status, written atomically.
type meta struct {
	Tenant   string `json:"tenant"`
	App      string `json:"app"`
	Revision string `json:"revision"`
	Replica  string `json:"replica"`

	Command    []string `json:"command"`
	Port       int      `json:"port"`
	Address    string   `json:"address"`
	HealthPath string   `json:"health_path,omitempty"`

	// PID is the replica's supervisor, which leads the process group the
	// replica runs in; 0 until it started. StartTicks is its start time in
	// clock ticks since boot (/proc/<pid>/stat field 22): a pid with other
	// ticks is a different process that reused the number.
	PID        int       `json:"pid,omitempty"`
	StartTicks uint64    `json:"start_ticks,omitempty"`
	StartedAt  time.Time `json:"started_at"`

	ShutdownGrace apps.Duration `json:"shutdown_grace"`
	// StopRequested is set by Stop and never cleared; KillAt is when SIGKILL
	// follows the SIGTERM, so a restarted platform finishes the stop on time.
	StopRequested bool       `json:"stop_requested,omitempty"`
	KillAt        *time.Time `json:"kill_at,omitempty"`

	// Exit describes how the process ended, once it has.
	Exit     string     `json:"exit,omitempty"`
	ExitedAt *time.Time `json:"exited_at,omitempty"`
}

// id reads only the identity fields, which never change, so it is safe
// without Runtime.mu.
func (m *meta) id() apps.ReplicaID {
	return apps.ReplicaID{Tenant: m.Tenant, App: m.App, Revision: m.Revision, Replica: m.Replica}
}

func dirName(id apps.ReplicaID) string {
	return strings.Join([]string{id.Tenant, id.App, id.Revision, id.Replica}, ".")
}

func parseDirName(name string) (apps.ReplicaID, bool) {
	p := strings.Split(name, ".")
	if len(p) != 4 {
		return apps.ReplicaID{}, false
	}
	id := apps.ReplicaID{Tenant: p[0], App: p[1], Revision: p[2], Replica: p[3]}
	return id, checkID(id) == nil
}

// checkID keeps IDs to label characters, so they name a directory safely and
// split back into the same parts.
func checkID(id apps.ReplicaID) error {
	for _, part := range []string{id.Tenant, id.App, id.Revision, id.Replica} {
		if part == "" || strings.IndexFunc(part, notLabelRune) >= 0 {
			return fmt.Errorf("process: invalid replica id %q: parts must be non-empty labels of [A-Za-z0-9_-]", id.String())
		}
	}
	return nil
}

func notLabelRune(c rune) bool {
	return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_')
}

// writeMeta replaces meta.json atomically (write a temp file, sync, rename), so
// a platform killed mid-write leaves the old or the new version, never half.
func writeMeta(dir string, m meta) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, metaFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, metaFile))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}

func readMeta(dir string) (meta, error) {
	var m meta
	b, err := os.ReadFile(filepath.Join(dir, metaFile))
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("read state %s: %w", dir, err)
	}
	return m, nil
}

// mkdirMode creates dir (if needed) with exactly mode, whatever the umask.
func mkdirMode(dir string, mode os.FileMode) error {
	if err := os.MkdirAll(dir, mode); err != nil {
		return err
	}
	return os.Chmod(dir, mode)
}

// openStateDir prepares the state dir for replicas that run as other users:
// it is traversable by them (0711, not listable), and so must be every
// directory above it, or a replica could not reach its work dir.
func openStateDir(dir string) error {
	if err := os.Chmod(dir, 0o711); err != nil {
		return fmt.Errorf("process: state dir: %w", err)
	}
	real, err := filepath.EvalSymlinks(dir)
	if err == nil {
		real, err = filepath.Abs(real)
	}
	if err != nil {
		return fmt.Errorf("process: state dir: %w", err)
	}
	for d := filepath.Dir(real); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("process: state dir: %w", err)
		}
		if st.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("process: %s (above the state dir %s) is not traversable by other users (mode %v): replicas running as their tenant's uid could not reach their work dirs; chmod o+x it or choose another state dir",
				d, dir, st.Mode().Perm())
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}
