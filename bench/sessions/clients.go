package main

// The coordinator's side of the client processes: start them, hand each its
// plan, follow their reports, send commands, stop them.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/discovery-platform/discovery/internal/testkit/platformtest"
)

// client is one running client process.
type client struct {
	i    int
	plan plan
	cmd  *exec.Cmd
	in   io.WriteCloser
	log  string
	// events carries every report but progress; it is closed when the
	// process's stdout ends.
	events chan report
	done   chan struct{} // closed once the process has been waited for

	mu   sync.Mutex
	last report // the latest report of any kind
}

// startClients starts one client process per plan, with the run's marker in
// its environment (so the teardown's KillAll finds it too) and in a process
// group of its own (a Ctrl-C reaches the coordinator, which stops them in
// order). The kernel kills a client whose coordinator dies.
func startClients(plans []plan, marker, dir string) ([]*client, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var out []*client
	for i, p := range plans {
		c := &client{i: i, plan: p, events: make(chan report, 16), done: make(chan struct{}),
			log: filepath.Join(dir, "client"+strconv.Itoa(i)+".log")}
		if err := c.start(exe, marker); err != nil {
			return out, fmt.Errorf("client process %d: %w", i, err)
		}
		out = append(out, c)
	}
	return out, nil
}

func (c *client) start(exe, marker string) error {
	logf, err := os.OpenFile(c.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own copy
	c.cmd = exec.Command(exe, workerArg)
	c.cmd.Env = append(os.Environ(), marker)
	c.cmd.Stderr = logf
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if c.in, err = c.cmd.StdinPipe(); err != nil {
		return err
	}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := c.cmd.Start(); err != nil {
		return err
	}
	go func() {
		defer close(c.events)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var r report
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				continue
			}
			c.mu.Lock()
			c.last = r
			c.mu.Unlock()
			if r.Event != "progress" {
				c.events <- r
			}
		}
	}()
	go func() { _ = c.cmd.Wait(); close(c.done) }()
	b, err := json.Marshal(c.plan)
	if err != nil {
		return err
	}
	_, err = c.in.Write(append(b, '\n'))
	return err
}

// latest is the client's latest report.
func (c *client) latest() report {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// command writes one command line to the client.
func (c *client) command(cmd string) error {
	_, err := io.WriteString(c.in, cmd+"\n")
	return err
}

// await waits for the client's next report of the given event, until ctx
// ends or within passes.
func (c *client) await(ctx context.Context, event string, within time.Duration) (report, error) {
	t := time.NewTimer(within)
	defer t.Stop()
	for {
		select {
		case r, ok := <-c.events:
			if !ok {
				return report{}, fmt.Errorf("client process %d ended before %q; its log ends:\n%s", c.i, event, platformtest.LogTail(c.log, 1500))
			}
			if r.Event == event {
				return r, nil
			}
		case <-t.C:
			return report{}, fmt.Errorf("client process %d: no %q within %s", c.i, event, within)
		case <-ctx.Done():
			return report{}, ctx.Err()
		}
	}
}

// stop ends the client: its stdin closes (it closes its sessions and
// exits); past grace it is killed. It is safe to call more than once.
func (c *client) stop(grace time.Duration) {
	_ = c.in.Close()
	select {
	case <-c.done:
	case <-time.After(grace):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// awaitAll waits for event from every client, in parallel, within the same
// bound; the reports come back in the clients' order.
func awaitAll(ctx context.Context, clients []*client, event string, within time.Duration) ([]report, error) {
	out := make([]report, len(clients))
	errs := make([]error, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i], errs[i] = c.await(ctx, event, within)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// progress sums the clients' latest reports: sessions held and failed.
func progress(clients []*client) (held, failed int) {
	for _, c := range clients {
		r := c.latest()
		held += r.Held
		failed += r.Failed
	}
	return held, failed
}
