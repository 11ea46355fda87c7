package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.uber.org/zap"
)

// backup writes an etcd snapshot of everything the platform keeps (apps,
// revisions, tenants, policies, quotas, events) to a file. It works against
// the embedded etcd of a running platform (found through --data-dir) or an
// external cluster (--etcd).
func backup(args []string) error {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	out := fs.String("out", "", "snapshot file to write (required)")
	dataDir := fs.String("data-dir", env("DISCOVERY_DATA_DIR", "./data"), "data dir of a running platform with an embedded etcd")
	etcd := fs.String("etcd", env("DISCOVERY_ETCD", ""), "etcd endpoints (instead of the embedded one)")
	var c Config
	etcdTLSFlags(fs, &c)
	if err := fs.Parse(args); err != nil {
		return err
	}
	tlsCfg, err := etcdTLS(c)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if *out == "" {
		return errors.New("backup: --out FILE is required")
	}
	endpoints := splitList(*etcd)
	if len(endpoints) == 0 {
		u, err := readURLs(filepath.Join(*dataDir, "etcd"))
		if err != nil {
			return fmt.Errorf("backup: no --etcd and no embedded etcd found in %s (is the platform running?): %w", *dataDir, err)
		}
		endpoints = []string{u.Client}
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, TLS: tlsCfg, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	status, err := cli.Status(ctx, endpoints[0])
	if err != nil {
		return fmt.Errorf("backup: etcd at %s: %w", endpoints[0], err)
	}
	rc, err := cli.Snapshot(ctx)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer rc.Close()
	tmp := *out + ".part"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, rc)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("backup: %w", err)
	}
	if err := os.Rename(tmp, *out); err != nil {
		return err
	}
	fmt.Printf("backup: wrote %s (%d bytes, etcd revision %d)\n", *out, n, status.Header.Revision)
	return nil
}

// restore makes a fresh embedded-etcd data dir from a snapshot. Start the
// platform on it afterwards; running replicas are re-adopted when it is given
// their --replica-dir.
func restore(args []string) error {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	from := fs.String("from", "", "snapshot file written by 'platform backup' (required)")
	dataDir := fs.String("data-dir", "", "data dir to create (required; its etcd/ must not exist)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *from == "" || *dataDir == "" {
		return errors.New("restore: --from FILE and --data-dir DIR are required")
	}
	etcdDir := filepath.Join(*dataDir, "etcd")
	if _, err := os.Stat(etcdDir); err == nil {
		return fmt.Errorf("restore: %s already exists; restore into a fresh data dir", etcdDir)
	}
	if err := os.MkdirAll(*dataDir, 0o700); err != nil {
		return err
	}
	err := snapshot.NewV3(zap.NewNop()).Restore(snapshot.RestoreConfig{
		SnapshotPath:        *from,
		Name:                "discovery",
		OutputDataDir:       etcdDir,
		PeerURLs:            []string{noPeerURL},
		InitialCluster:      "discovery=" + noPeerURL,
		InitialClusterToken: "etcd-cluster",
	})
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	fmt.Printf("restore: %s restored into %s; start the platform with --data-dir %s\n", *from, etcdDir, *dataDir)
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}
