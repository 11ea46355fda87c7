package main

// The installation under test: an etcd embedded in this program, a control
// plane (`--role api`), the gateway under test (`--role gateway
// --gateway-procs N`: one process and N-1 workers on one port) and an echo
// app of testapp replicas.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/discovery-platform/discovery/bench/internal/rig"
	"github.com/discovery-platform/discovery/internal/testkit/etcdtest"
)

// installation is what setup started; close stops all of it.
type installation struct {
	dir, marker string
	etcd        *etcdtest.Etcd
	control     *rig.Proc
	gateway     *rig.Proc
	gatewayAddr string
	api         *rig.API
	// endpoints are one endpoint URL (the WebSocket path) per replica of
	// the echo app, each pinning its replica.
	endpoints []string
}

// setup builds the binaries (unless given), starts everything and deploys
// the echo app. On error, what did start is left for close.
func setup(ctx context.Context, c config, in *installation) error {
	if err := rig.OpenToReplicas(in.dir); err != nil {
		return err
	}
	if c.platform == "" || c.testapp == "" {
		fmt.Println("building the platform and the echo app...")
	}
	platform, echo, err := rig.Binaries(in.dir, c.platform, c.testapp)
	if err != nil {
		return err
	}
	if in.etcd, err = etcdtest.StartAt(filepath.Join(in.dir, "etcd")); err != nil {
		return err
	}
	apiAddr, err := rig.FreeAddr()
	if err != nil {
		return err
	}
	if in.gatewayAddr, err = rig.FreeAddr(); err != nil {
		return err
	}
	env := append(os.Environ(), in.marker)
	// Bounds that would refuse this run's sessions, lifted: every session
	// comes from eight loopback addresses of one tenant (the per-address
	// and per-tenant session bounds hold per gateway process), and the
	// control plane is asked for endpoints from one address.
	unbounded := []string{"--max-sessions-per-addr", "0", "--max-sessions-per-tenant", "0", "--reservations-per-addr", "0"}
	in.control = &rig.Proc{Name: "control", Path: platform, Env: env, Log: filepath.Join(in.dir, "control.log"),
		Args: append([]string{"--role", "api", "--etcd", in.etcd.Endpoint, "--addr", apiAddr,
			"--public-url", "http://" + in.gatewayAddr, "--data-dir", filepath.Join(in.dir, "control"), "--instance", "control",
			"--probe-interval", "200ms", "--log-level", "warn", "--endpoint-rate", "0", "--replica-env", in.marker}, unbounded...)}
	if err := in.control.Start(); err != nil {
		return err
	}
	in.api = rig.NewAPI(apiAddr)
	if !rig.Poll(ctx, 60*time.Second, 100*time.Millisecond, func() bool { return in.api.Ready(ctx) }) {
		return fmt.Errorf("the control plane is not ready within 60s; its log ends:\n%s", in.control.LogTail(3000))
	}
	if err := in.api.LoadToken(filepath.Join(in.dir, "control")); err != nil {
		return err
	}
	// A short drain: at the end (or on an error) the gateway has nothing
	// left to wait for, or nothing worth waiting for.
	in.gateway = &rig.Proc{Name: "gateway", Path: platform, Env: env, Log: filepath.Join(in.dir, "gateway.log"),
		Args: append([]string{"--role", "gateway", "--etcd", in.etcd.Endpoint, "--gateway-addr", in.gatewayAddr,
			"--gateway-procs", fmt.Sprint(c.gatewayProcs), "--data-dir", filepath.Join(in.dir, "gateway"), "--instance", "gateway",
			"--drain-timeout", "15s", "--log-level", "warn"}, unbounded...)}
	if err := in.gateway.Start(); err != nil {
		return err
	}
	if err := in.api.Do(ctx, "POST", "/apps", map[string]any{"name": "echo", "replicas": c.replicas, "health_path": "/healthz", "strategy": "spread"}, nil); err != nil {
		return err
	}
	if _, err := in.api.Deploy(ctx, "echo", []string{echo}, nil); err != nil {
		return err
	}
	if !rig.Poll(ctx, 120*time.Second, 200*time.Millisecond, func() bool { return readyReplicas(ctx, in.api) >= c.replicas }) {
		return fmt.Errorf("the echo app's %d replicas were not all ready within 120s; the control plane's log ends:\n%s", c.replicas, in.control.LogTail(3000))
	}
	if in.endpoints, err = endpointPerReplica(ctx, in.api, in.gatewayAddr, c.replicas); err != nil {
		return err
	}
	// Every gateway process serves once it has the route table; the workers
	// are started by the first one.
	if !rig.Poll(ctx, 60*time.Second, 200*time.Millisecond, func() bool {
		return len(gatewayPIDs(in.gateway.PID())) == c.gatewayProcs &&
			rig.Get(ctx, in.api.HTTP, "http://"+in.gatewayAddr+"/healthz") == nil
	}) {
		return fmt.Errorf("%d gateway processes not serving within 60s (found %d); the gateway's log ends:\n%s",
			c.gatewayProcs, len(gatewayPIDs(in.gateway.PID())), in.gateway.LogTail(3000))
	}
	return nil
}

// readyReplicas counts the ready replicas of the echo app's active revision.
func readyReplicas(ctx context.Context, api *rig.API) int {
	revs, err := api.Revisions(ctx, "echo")
	if err != nil {
		return 0
	}
	n := 0
	for _, r := range revs {
		if r.State != "active" {
			continue
		}
		for _, rep := range r.Replicas {
			if rep.State == "ready" && !rep.Stopping {
				n++
			}
		}
	}
	return n
}

// endpointPerReplica asks get-endpoint until it has handed out every
// replica (the app spreads sessions, so a few calls do) and returns one
// WebSocket URL per replica, through the gateway under test. Sessions then
// reuse these URLs, as reconnecting players do: asking for 50,000 endpoints
// would measure the control plane, not the gateway.
func endpointPerReplica(ctx context.Context, api *rig.API, gateway string, replicas int) ([]string, error) {
	byReplica := map[string]string{}
	for i := 0; i < 50*replicas && len(byReplica) < replicas; i++ {
		ep, _, _, err := api.GetEndpoint(ctx, "echo")
		if err != nil {
			return nil, err
		}
		if _, ok := byReplica[ep.Replica]; !ok {
			byReplica[ep.Replica] = rig.Via(ep.Endpoint, gateway) + "ws"
		}
	}
	if len(byReplica) < replicas {
		return nil, fmt.Errorf("get-endpoint handed out %d of the %d replicas in %d calls", len(byReplica), replicas, 50*replicas)
	}
	var out []string
	for _, u := range byReplica {
		out = append(out, u)
	}
	return out, nil
}

// close stops everything setup started, the last started first, then
// whatever still carries the marker (replicas, gateway workers).
func (in *installation) close() {
	if in.gateway != nil {
		in.gateway.Stop(30 * time.Second)
	}
	if in.control != nil {
		in.control.Stop(30 * time.Second)
	}
	rig.KillAll(in.marker)
	// A replica's supervisor (it does not carry the marker) writes down
	// its replica's exit in the work dir after the kill: it must be gone
	// before the dir is removed, or it leaves the dir behind.
	for i := 0; i < 100 && len(under(in.dir)) > 0; i++ {
		if i == 50 {
			for _, pid := range under(in.dir) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if in.etcd != nil {
		in.etcd.Stop()
	}
}
