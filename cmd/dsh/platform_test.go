package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/discovery-platform/discovery/client"
	"github.com/discovery-platform/discovery/internal/testkit/platformtest"
	"github.com/discovery-platform/discovery/internal/testkit/testapp/build"
)

// The tests drive the real dsh binary against the real platform binary
// (embedded etcd, process runtime), both built once per test binary.

var (
	dshOnce sync.Once
	dshBin  string
	dshErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	platformtest.Cleanup()
	build.Cleanup()
	os.Exit(code)
}

// binaries builds dsh and the platform on first use, dsh into the
// platform's directory (platformtest.Cleanup removes it).
func binaries(t *testing.T) (dsh, platform string) {
	t.Helper()
	platform = platformtest.Binary(t)
	dshOnce.Do(func() {
		dshBin = filepath.Join(filepath.Dir(platform), "dsh")
		dshErr = platformtest.GoBuild(dshBin, "github.com/discovery-platform/discovery/cmd/dsh")
	})
	if dshErr != nil {
		t.Fatal(dshErr)
	}
	return dshBin, platform
}

// platform is one running platform with its own data dir and ports
// (DataDir, Token, Marker: platformtest's).
type platform struct {
	*platformtest.Platform
	URL string
}

// freeAddr is a loopback host:port nothing listens on (dsh_test.go's nothing-there URL).
func freeAddr(t *testing.T) string { return platformtest.Addr(t) }

// startPlatform runs the platform and waits for /readyz; everything it and
// its replicas started is killed at cleanup.
func startPlatform(t *testing.T) *platform {
	t.Helper()
	_, bin := binaries(t)
	p := &platform{Platform: platformtest.New(t)}
	p.Binary = bin
	p.Start()
	p.URL = p.APIURL()
	return p
}

// Stop stops the platform gracefully: SIGTERM, and it must exit 0 within
// 30s (the test it fails is the platform's).
func (p *platform) Stop(*testing.T) { p.Platform.Stop() }

// Client is a Go client for checks made beside dsh.
func (p *platform) Client(t *testing.T) *client.Client {
	c, err := client.New(client.Config{URL: p.URL, Token: p.Token})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// operator is the environment dsh runs in: its own HOME (config and
// history land there), the platform's URL and token.
type operator struct {
	t      *testing.T
	Home   string
	Config string // $XDG_CONFIG_HOME
	Env    []string
}

func newOperator(t *testing.T, p *platform) *operator {
	home := t.TempDir()
	o := &operator{t: t, Home: home, Config: filepath.Join(home, ".config")}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DISCOVERY_") && !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "XDG_CONFIG_HOME=") {
			o.Env = append(o.Env, kv)
		}
	}
	o.Env = append(o.Env, "HOME="+home, "XDG_CONFIG_HOME="+o.Config, "TERM=xterm")
	if p != nil {
		o.Env = append(o.Env, "DISCOVERY_URL="+p.URL, "DISCOVERY_TOKEN="+p.Token, p.Marker)
	}
	return o
}

// result is one dsh run's outcome.
type result struct {
	Stdout, Stderr string
	Code           int
}

// dsh runs the dsh binary to completion (at most 60s) with extra env.
func (o *operator) dsh(stdin string, env []string, args ...string) result {
	o.t.Helper()
	bin, _ := binaries(o.t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(append([]string{}, o.Env...), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	r := result{Stdout: out.String(), Stderr: errOut.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.Code = ee.ExitCode()
	} else if err != nil {
		o.t.Fatalf("dsh %v: %v", args, err)
	}
	return r
}
