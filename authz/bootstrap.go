package authz

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// BootstrapSubject is the platform admin created on the very first start.
const BootstrapSubject = "admin"

// TokenFile is where the bootstrap admin token is written in the data dir.
const TokenFile = "admin.token"

// Bootstrap runs until it has succeeded once per installation: it makes
// BootstrapSubject a platform admin, writes a token for it, valid for a
// year, to dataDir/admin.token (mode 0600, whatever file was there), and only
// then records in etcd that the installation is bootstrapped. Of instances
// starting together one does it (it claims the work under a short etcd
// lease); a first attempt that failed half-way (an unwritable data dir, a
// crash) leaves no record, so a later start tries again. It returns the
// file's path when it wrote one.
func Bootstrap(ctx context.Context, cli *clientv3.Client, prefix string, a *Authorizer, dataDir string) (string, error) {
	done, claim := path.Join(prefix, "authz", "bootstrapped"), path.Join(prefix, "authz", "bootstrapping")
	resp, err := cli.Get(ctx, done, clientv3.WithCountOnly())
	if err != nil {
		return "", fmt.Errorf("bootstrap: %w", err)
	}
	if resp.Count > 0 {
		return "", nil
	}
	lease, err := cli.Grant(ctx, 30)
	if err != nil {
		return "", fmt.Errorf("bootstrap: %w", err)
	}
	defer func() { _, _ = cli.Revoke(context.WithoutCancel(ctx), lease.ID) }()
	txn, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(done), "=", 0), clientv3.Compare(clientv3.CreateRevision(claim), "=", 0)).
		Then(clientv3.OpPut(claim, time.Now().UTC().Format(time.RFC3339), clientv3.WithLease(lease.ID))).Commit()
	if err != nil {
		return "", fmt.Errorf("bootstrap: %w", err)
	}
	if !txn.Succeeded {
		return "", nil // done, or another instance is doing it
	}
	if err := a.Grant(BootstrapSubject, RoleAdmin, Platform); err != nil {
		return "", err
	}
	token, _, err := a.Tokens.Issue(BootstrapSubject, "", 365*24*time.Hour)
	if err != nil {
		return "", err
	}
	file := filepath.Join(dataDir, TokenFile)
	if err := writePrivate(file, []byte(token+"\n")); err != nil {
		return "", fmt.Errorf("bootstrap: write %s: %w", file, err)
	}
	if _, err := cli.Put(ctx, done, time.Now().UTC().Format(time.RFC3339)); err != nil {
		return "", fmt.Errorf("bootstrap: %w", err)
	}
	return file, nil
}

// writePrivate writes a file readable by its owner only, even when a file
// with a looser mode was there: a new file is written and renamed over it.
func writePrivate(file string, b []byte) error {
	tmp := file + ".tmp"
	_ = os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, file)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}
