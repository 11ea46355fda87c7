package process

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// findSupervisor resolves Config.Supervisor: the given path, else
// discovery-supervisor beside the running executable (make build puts both in
// bin/), else in $PATH.
func findSupervisor(path string) (string, error) {
	if path != "" {
		if err := checkExecutable(path); err != nil {
			return "", fmt.Errorf("process: Config.Supervisor: %w", err)
		}
		return filepath.Abs(path)
	}
	var looked []string
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), supervisorName)
		if checkExecutable(p) == nil {
			return p, nil
		}
		looked = append(looked, p)
	}
	if p, err := exec.LookPath(supervisorName); err == nil {
		return filepath.Abs(p)
	}
	looked = append(looked, supervisorName+" in $PATH")
	return "", fmt.Errorf("process: no supervisor binary: looked for %s; build it with make build (bin/%s) or set its path",
		strings.Join(looked, " and "), supervisorName)
}

// resolveCommand returns the absolute path of the program a replica runs. A
// name with a slash is taken relative to the platform's working directory (a
// replica's own is its work dir); a bare name is looked up in the replica's
// PATH, as the replica itself would.
func resolveCommand(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		p, err := filepath.Abs(name)
		if err != nil {
			return "", err
		}
		return p, checkExecutable(p)
	}
	var path string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, d := range filepath.SplitList(path) {
		// A relative entry would mean the replica's work dir: never a
		// program the platform meant.
		if !filepath.IsAbs(d) {
			continue
		}
		if p := filepath.Join(d, name); checkExecutable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: executable file not found in the replica's PATH %q", name, path)
}

func checkExecutable(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	if st.IsDir() || st.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s: %w", p, errors.New("not an executable file"))
	}
	return nil
}

// dedupEnv keeps the last of several entries with one name, where it stands.
func dedupEnv(env []string) []string {
	seen := map[string]bool{}
	out := make([]string, 0, len(env))
	for _, kv := range slices.Backward(env) {
		k, _, _ := strings.Cut(kv, "=")
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, kv)
	}
	slices.Reverse(out)
	return out
}
