package apps

import (
	"fmt"

	"github.com/discovery-platform/discovery/tenants"
)

// Usage is what a tenant holds in the platform's store. It is kept in etcd
// beside the records it counts and changed in the same transaction as them,
// so a quota check and the write it guards are one transaction: concurrent
// creates can never overshoot a limit.
type Usage struct {
	Apps      int `json:"apps"`
	Replicas  int `json:"replicas"`
	Revisions int `json:"revisions"`
	// Bytes is the size of every revision spec the tenant keeps (image,
	// command, env), what max_stored_bytes bounds.
	Bytes int64 `json:"stored_bytes"`
}

// Quota rules: pure functions of the quota and the usage (as it would be
// after the write), each refusal naming the limit and the usage.

// QuotaCheck refuses a write that would take usage past the quota; the store
// calls it with the usage it read, inside the write's transaction.
type QuotaCheck func(Usage) error

func checkApps(q tenants.Quota, u Usage) error {
	if u.Apps+1 > q.MaxApps {
		return fmt.Errorf("%w: max_apps is %d and the tenant has %d apps", tenants.ErrQuotaExceeded, q.MaxApps, u.Apps)
	}
	return nil
}

func checkReplicas(q tenants.Quota, have, adding int) error {
	if adding > 0 && have+adding > q.MaxReplicas {
		return fmt.Errorf("%w: max_replicas is %d; the tenant runs %d and this needs %d more", tenants.ErrQuotaExceeded, q.MaxReplicas, have, adding)
	}
	return nil
}

func checkBytes(q tenants.Quota, u Usage, adding int64) error {
	if u.Bytes+adding > q.MaxStoredBytes {
		return fmt.Errorf("%w: max_stored_bytes is %d; the tenant's revisions keep %d bytes and this one needs %d more: delete apps, or wait for old revisions to be trimmed (max_revisions)", tenants.ErrQuotaExceeded, q.MaxStoredBytes, u.Bytes, adding)
	}
	return nil
}

// ReplicaCheck is the reconciler's check before it records one more replica.
func ReplicaCheck(q tenants.Quota) QuotaCheck {
	return func(u Usage) error { return checkReplicas(q, u.Replicas, 1) }
}

// ReplicasAllowed is how many more replicas a tenant may start (the
// reconciler's cap): never negative.
func ReplicasAllowed(q tenants.Quota, have int) int {
	return max(q.MaxReplicas-have, 0)
}

// floor keeps counts from going negative.
func (u Usage) floor() Usage {
	u.Apps, u.Replicas, u.Revisions, u.Bytes = max(u.Apps, 0), max(u.Replicas, 0), max(u.Revisions, 0), max(u.Bytes, 0)
	return u
}
