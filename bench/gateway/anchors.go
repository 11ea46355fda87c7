package main

// The anchors the gateway is measured against: nginx and HAProxy from
// Debian, each run as one serving process in front of the same replica.

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/discovery-platform/discovery/bench/internal/rig"
	"github.com/discovery-platform/discovery/internal/testkit/platformtest"
)

// tools are the programs the comparison runs; an empty path is missing.
type tools struct {
	nginx, haproxy, strace                      string
	nginxVersion, haproxyVersion, straceVersion string
}

// lookBin finds a program in $PATH or in the sbin directories Debian puts
// daemons in (which a user's $PATH may lack).
func lookBin(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/bin"} {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// ensureTools installs nginx-light and haproxy (and strace, when asked) from
// apt when they are missing, then finds them and their versions. A failed
// install is printed, not fatal: the anchor's row stays empty.
func ensureTools(dir string, withStrace, install bool) tools {
	want := []struct{ bin, pkg string }{{"nginx", "nginx-light"}, {"haproxy", "haproxy"}}
	if withStrace {
		want = append(want, struct{ bin, pkg string }{"strace", "strace"})
	}
	var missing []string
	for _, w := range want {
		if lookBin(w.bin) == "" {
			missing = append(missing, w.pkg)
		}
	}
	if len(missing) > 0 {
		if !install {
			fmt.Printf("missing %s, not installed (-install=false)\n", strings.Join(missing, ", "))
		} else {
			fmt.Printf("installing %s from apt...\n", strings.Join(missing, ", "))
			if err := aptInstall(filepath.Join(dir, "apt.log"), missing); err != nil {
				fmt.Printf("apt-get failed (%v): the missing anchors are skipped\n", err)
			}
		}
	}
	t := tools{nginx: lookBin("nginx"), haproxy: lookBin("haproxy")}
	if withStrace {
		t.strace = lookBin("strace")
	}
	if t.nginx != "" {
		t.nginxVersion = version(t.nginx, "-v") // "nginx version: nginx/1.22.1"
		t.nginxVersion = strings.TrimPrefix(t.nginxVersion, "nginx version: ")
	}
	if t.haproxy != "" {
		t.haproxyVersion = version(t.haproxy, "-v") // "HAProxy version 2.6.12-1 2023/12/16 - https://haproxy.org/"
		t.haproxyVersion, _, _ = strings.Cut(t.haproxyVersion, " - ")
	}
	if t.strace != "" {
		t.straceVersion = version(t.strace, "-V")
	}
	return t
}

// aptInstall runs apt-get update and apt-get install -y pkgs, logging to log.
// Debian's policy-rc.d on these machines keeps the packages' services from
// starting; nothing is left running either way (the bench starts its own).
func aptInstall(log string, pkgs []string) error {
	f, err := os.Create(log)
	if err != nil {
		return err
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	for _, args := range [][]string{{"update"}, append([]string{"install", "-y", "--no-install-recommends"}, pkgs...)} {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = f, f
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("apt-get %s: %w; its log ends:\n%s", args[0], err, platformtest.LogTail(log, 2000))
		}
	}
	return nil
}

// version runs bin with flag and returns the first line it prints.
func version(bin, flag string) string {
	out, err := exec.Command(bin, flag).CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if err != nil && line == "" {
		return "unknown (" + err.Error() + ")"
	}
	return strings.TrimSpace(line)
}

// startNginx runs nginx with one worker on loopback, proxying WebSocket to
// upstream (the replica), with room for conns sessions: a session costs a
// worker two connections, and nginx starts closing connections that wait for
// their request once fewer than 1/16 of worker_connections are free
// (ngx_drain_connections), so it gets a quarter more, up to the fd limit. It
// returns the master process and the address.
func startNginx(bin, dir, upstream, marker string, conns int) (*rig.Proc, string, error) {
	ndir := filepath.Join(dir, "nginx")
	if err := os.MkdirAll(ndir, 0o755); err != nil {
		return nil, "", err
	}
	addr, err := rig.FreeAddr()
	if err != nil {
		return nil, "", err
	}
	conf := fmt.Sprintf(`worker_processes 1;
daemon off;
worker_rlimit_nofile %[5]d;
pid %[1]s/nginx.pid;
error_log stderr warn;
events { worker_connections %[4]d; }
http {
  access_log off;
  client_body_temp_path %[1]s/body; proxy_temp_path %[1]s/proxy; fastcgi_temp_path %[1]s/fcgi;
  uwsgi_temp_path %[1]s/uwsgi; scgi_temp_path %[1]s/scgi;
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  server {
    listen %[2]s backlog=4096;
    location / {
      proxy_pass http://%[3]s;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_read_timeout 3600s;
      proxy_send_timeout 3600s;
    }
  }
}
`, ndir, addr, upstream, min(2*conns+conns/2+128, fdHard()-10), fdHard())
	cf := filepath.Join(ndir, "nginx.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		return nil, "", err
	}
	p := &rig.Proc{Name: "nginx", Path: bin, Args: []string{"-c", cf, "-p", ndir, "-e", "stderr"},
		Env: append(os.Environ(), marker), Log: filepath.Join(ndir, "stderr.log")}
	return p, addr, startListening(p, addr, 2)
}

// startHAProxy runs HAProxy in master-worker mode with one thread on
// loopback, proxying to upstream (the replica), with room for conns
// sessions. It returns the master process and the address.
func startHAProxy(bin, dir, upstream, marker string, conns int) (*rig.Proc, string, error) {
	hdir := filepath.Join(dir, "haproxy")
	if err := os.MkdirAll(hdir, 0o755); err != nil {
		return nil, "", err
	}
	addr, err := rig.FreeAddr()
	if err != nil {
		return nil, "", err
	}
	// mode http understands the Upgrade and then tunnels; timeout tunnel
	// keeps idle sessions open. maxconn bounds front connections; HAProxy
	// sizes its descriptor table from it (two per session).
	conf := fmt.Sprintf(`global
  nbthread 1
  maxconn %[3]d
defaults
  mode http
  maxconn %[3]d
  timeout connect 5s
  timeout client 1h
  timeout server 1h
  timeout tunnel 1h
  timeout http-request 10s
frontend fe
  bind %[1]s
  default_backend be
backend be
  server replica %[2]s
`, addr, upstream, conns+64)
	cf := filepath.Join(hdir, "haproxy.cfg")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		return nil, "", err
	}
	p := &rig.Proc{Name: "haproxy", Path: bin, Args: []string{"-W", "-db", "-f", cf},
		Env: append(os.Environ(), marker), Log: filepath.Join(hdir, "stderr.log")}
	return p, addr, startListening(p, addr, 2)
}

// startListening starts p and waits until addr accepts connections and the
// process tree has procs processes (master and worker); on failure it stops p.
func startListening(p *rig.Proc, addr string, procs int) error {
	if err := start(p); err != nil {
		return err
	}
	ok := rig.Poll(context.Background(), 10*time.Second, 50*time.Millisecond, func() bool {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return false
		}
		c.Close()
		return len(tree(p.PID())) >= procs
	})
	if !ok {
		p.Stop(15 * time.Second)
		return fmt.Errorf("%s did not listen on %s: %s", p.Name, addr, p.LogTail(2000))
	}
	return nil
}
