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

// Bootstrap runs once per installation (the first instance to claim it in
// etcd): it makes BootstrapSubject a platform admin and writes a token for it,
// valid for a year, to dataDir/admin.token with mode 0600. It returns the
// file's path when it wrote one.
func Bootstrap(ctx context.Context, cli *clientv3.Client, prefix string, a *Authorizer, dataDir string) (string, error) {
	key := path.Join(prefix, "authz", "bootstrapped")
	resp, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, time.Now().UTC().Format(time.RFC3339))).Commit()
	if err != nil {
		return "", fmt.Errorf("bootstrap: %w", err)
	}
	if !resp.Succeeded {
		return "", nil
	}
	if err := a.Grant(BootstrapSubject, RoleAdmin, Platform); err != nil {
		return "", err
	}
	token, _, err := a.Tokens.Issue(BootstrapSubject, "", 365*24*time.Hour)
	if err != nil {
		return "", err
	}
	file := filepath.Join(dataDir, TokenFile)
	if err := os.WriteFile(file, []byte(token+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("bootstrap: write %s: %w", file, err)
	}
	return file, nil
}
