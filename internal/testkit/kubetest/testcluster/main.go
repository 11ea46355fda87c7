// Command testcluster runs the Kubernetes test cluster of internal/kubetest
// by hand (`make testcluster`): etcd, API server, controller manager,
// scheduler and process nodes on loopback ports, until Ctrl-C or SIGTERM.
// Images are mapped to local commands with -catalog (a JSON object from
// image to argv) or -image image=command.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/discovery-platform/discovery/internal/testkit/kubenode"
	"github.com/discovery-platform/discovery/internal/testkit/kubetest"
)

type imageFlags map[string][]string

func (f imageFlags) String() string { return fmt.Sprint(map[string][]string(f)) }
func (f imageFlags) Set(s string) error {
	image, cmd, ok := strings.Cut(s, "=")
	if !ok || image == "" || strings.TrimSpace(cmd) == "" {
		return fmt.Errorf("want image=command, got %q", s)
	}
	f[image] = strings.Fields(cmd)
	return nil
}

func main() {
	nodes := flag.Int("nodes", 1, "number of process nodes")
	dir := flag.String("dir", "", "cluster directory (default: a temp dir, removed at exit)")
	catalog := flag.String("catalog", "", "JSON file mapping images to argv, e.g. {\"example/arena:1\": [\"bin/arena\"]}")
	images := imageFlags{}
	flag.Var(images, "image", "image=command mapping, repeatable (e.g. -image example/hello:1=bin/hello)")
	verbose := flag.Bool("v", false, "log the nodes' pod events")
	flag.Parse()

	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if err := run(*nodes, *dir, *catalog, images, log); err != nil {
		fmt.Fprintln(os.Stderr, "testcluster:", err)
		os.Exit(1)
	}
}

func run(nodes int, dir, catalog string, images imageFlags, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var entries map[string][]string
	if catalog != "" {
		c, err := kubenode.LoadCatalog(catalog)
		if err != nil {
			return err
		}
		entries = c.Entries()
	}
	start := time.Now()
	startCtx, cancel := context.WithTimeout(ctx, kubetest.StartTimeout)
	c, err := kubetest.Start(startCtx, kubetest.Options{Nodes: nodes, Dir: dir, Logger: log})
	cancel()
	if err != nil {
		return err
	}
	defer c.Stop()
	for image, argv := range entries {
		c.SetImage(image, argv)
	}
	for image, argv := range images {
		c.SetImage(image, argv)
	}
	fmt.Printf(`Kubernetes test cluster ready in %s (%d node(s)); its files are in %s.

  kubeconfig: %s

  export KUBECONFIG=%s
  bin/testcluster/kubectl get nodes

Pods run as local processes; images map to commands: %v
Ctrl-C stops everything.
`, time.Since(start).Round(time.Millisecond), nodes, c.Dir, c.Kubeconfig, c.Kubeconfig, c.Catalog.Entries())
	<-ctx.Done()
	fmt.Println("\nstopping the test cluster")
	return nil
}
