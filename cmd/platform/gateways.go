package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Several gateway processes on one port (--gateway-procs N). A process holds
// two fds per proxied session and the fd limit is per process, so one
// process serves ~10k sessions; N processes serve N times that. They share
// the very listening socket, the way nginx's workers do: this process (the
// one tableflip hands sockets to on an upgrade) passes it to N-1 worker
// processes of the same binary (`--gateway-fd 3`), and the kernel hands each
// new connection to one of the processes accepting on it. On an in-place
// upgrade the new process starts its own workers on the inherited socket and
// the old process tells its workers to drain: nothing closes the socket, so
// no connection waiting in its backlog is lost. The socket has SO_REUSEPORT,
// so a platform restarted while a killed one's workers are still letting go
// of it binds the port beside them.

// gatewayWorkerFD is the fd a worker finds the shared listener at.
const gatewayWorkerFD = 3

// workers are this process's gateway worker processes.
type workers struct {
	m    *Main
	file *os.File // the shared listener's fd, passed to each worker

	mu       sync.Mutex
	procs    map[int]*exec.Cmd // by worker index
	stopping bool
	wg       sync.WaitGroup
}

// startGatewayWorkers starts n-1 workers on the gateway listener.
func (m *Main) startGatewayWorkers(etcdEndpoints []string) error {
	n := m.Config.GatewayProcs
	if n <= 1 || m.Config.GatewayFD != 0 {
		return nil
	}
	tl, ok := m.gatewayLn.(*net.TCPListener)
	if !ok {
		return fmt.Errorf("--gateway-procs: the gateway listener is not a TCP socket")
	}
	f, err := tl.File() // a dup: the workers' copy
	if err != nil {
		return fmt.Errorf("--gateway-procs: %w", err)
	}
	w := &workers{m: m, file: f, procs: map[int]*exec.Cmd{}}
	m.workers = w
	for i := 1; i < n; i++ {
		w.wg.Add(1)
		go w.keep(i, etcdEndpoints)
	}
	return nil
}

// keep runs worker i, starting it again (after a pause) if it dies, until
// the workers stop.
func (w *workers) keep(i int, etcd []string) {
	defer w.wg.Done()
	for attempt := 0; ; attempt++ {
		cmd, err := w.spawn(i, etcd)
		if err != nil {
			w.m.Log.Error("gateway worker did not start", "worker", i, "err", err)
		} else {
			err = cmd.Wait()
		}
		w.mu.Lock()
		stopping := w.stopping
		delete(w.procs, i)
		w.mu.Unlock()
		if stopping {
			return
		}
		w.m.Log.Warn("gateway worker exited; starting it again", "worker", i, "err", err)
		time.Sleep(min(time.Duration(attempt+1)*time.Second, 10*time.Second))
	}
}

func (w *workers) spawn(i int, etcd []string) (*exec.Cmd, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopping {
		return nil, fmt.Errorf("stopping")
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	c := w.m.Config
	// The worker gets this process's flags, then what makes it a worker
	// (the last occurrence of a flag wins).
	args := append([]string{}, os.Args[1:]...)
	args = append(args, "--role", "gateway", "--gateway-procs", "1", "--gateway-fd", strconv.Itoa(gatewayWorkerFD),
		"--etcd", joinList(etcd), "--instance", fmt.Sprintf("%s-gw%d", c.Instance, i), "--metrics-addr", "")
	cmd := exec.Command(exe, args...)
	cmd.Env = os.Environ()
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.ExtraFiles = []*os.File{w.file}
	// A worker outlives neither this process nor its own purpose: when this
	// process dies, the kernel tells the worker to drain and stop.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	w.procs[i] = cmd
	w.m.Log.Info("gateway worker started", "worker", i, "pid", cmd.Process.Pid)
	return cmd, nil
}

// stop tells every worker to stop accepting and drain (SIGTERM: the same
// graceful stop as this process's), and waits for them until ctx ends.
func (w *workers) stop(ctx context.Context) {
	w.mu.Lock()
	w.stopping = true
	for _, cmd := range w.procs {
		_ = cmd.Process.Signal(syscall.SIGTERM)
	}
	w.mu.Unlock()
	done := make(chan struct{})
	go func() { w.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		w.mu.Lock()
		for _, cmd := range w.procs {
			_ = cmd.Process.Kill()
		}
		w.mu.Unlock()
		<-done
	}
	_ = w.file.Close()
}

// gatewayListener is a worker's listener: the socket its parent passed.
func gatewayListener() (net.Listener, error) {
	f := os.NewFile(gatewayWorkerFD, "gateway-listener")
	if f == nil {
		return nil, fmt.Errorf("--gateway-fd %d: no such fd", gatewayWorkerFD)
	}
	ln, err := net.FileListener(f)
	_ = f.Close() // FileListener holds a dup
	return ln, err
}

// reusePort sets SO_REUSEPORT on a socket about to listen (a ListenConfig's
// Control).
func reusePort(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

func joinList(l []string) string {
	out := ""
	for i, s := range l {
		if i > 0 {
			out += ","
		}
		out += s
	}
	return out
}
