// Package testkit holds what tests and bench programs use to run the real
// thing, and nothing production code may import: a real etcd per test
// (etcdtest), the test server replicas run (testapp), finding and stopping the
// processes a test started (proctest), a Kubernetes control plane with a
// process node (kubetest, kubenode), certificates for TLS tests (testca) and
// the platform binary started the way an operator starts it (platformtest).
//
// The production helpers live beside this folder: internal/etcdmirror,
// internal/etcdhealth, internal/etcdmaint, internal/certfile.
package testkit
