package kubenode

import (
	"context"
	"fmt"
	"maps"
	"runtime"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

// A node stays healthy in the eyes of the node lifecycle controller as long
// as its Lease in kube-node-lease is renewed within the node monitor grace
// period, or its Ready condition's heartbeat is; we do both, like the kubelet.

const leaseNamespace = "kube-node-lease"

// kubeletVersion is what the node reports: the control plane's version, so
// no version-skew rule of the scheduler or controllers treats it as old.
const kubeletVersion = "v1.34.4"

// register creates the Node (or takes over one of the same name left by an
// earlier run) and posts its first status.
func (n *Node) register(ctx context.Context) error {
	labels := map[string]string{
		v1.LabelHostname:   n.name,
		v1.LabelOSStable:   "linux",
		v1.LabelArchStable: runtime.GOARCH,
	}
	maps.Copy(labels, n.opts.Labels)
	node := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.name, Labels: labels}}
	_, err := n.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("kubenode: register node %s: %w", n.name, err)
	}
	if err := n.postStatus(ctx); err != nil {
		return fmt.Errorf("kubenode: node %s status: %w", n.name, err)
	}
	return nil
}

// heartbeat renews the Lease every RenewInterval and re-posts the status
// every StatusInterval until the node stops. Failures are logged and retried
// on the next tick: the API server may be restarting.
func (n *Node) heartbeat() {
	defer n.wg.Done()
	renew := time.NewTicker(n.opts.RenewInterval)
	defer renew.Stop()
	status := time.NewTicker(n.opts.StatusInterval)
	defer status.Stop()
	n.renewLease(n.ctx)
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-renew.C:
			n.renewLease(n.ctx)
		case <-status.C:
			if err := n.postStatus(n.ctx); err != nil && n.ctx.Err() == nil {
				n.log.Warn("node status update failed", "err", err)
			}
		}
	}
}

func (n *Node) renewLease(ctx context.Context) {
	leases := n.client.CoordinationV1().Leases(leaseNamespace)
	now := metav1.NewMicroTime(time.Now())
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		l, err := leases.Get(ctx, n.name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			l = &coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Name: n.name, Namespace: leaseNamespace},
				Spec: coordinationv1.LeaseSpec{
					HolderIdentity:       ptr.To(n.name),
					LeaseDurationSeconds: ptr.To(int32(n.opts.LeaseDuration / time.Second)),
					RenewTime:            &now,
				},
			}
			if node, err := n.client.CoreV1().Nodes().Get(ctx, n.name, metav1.GetOptions{}); err == nil {
				// Owned by the Node, so deleting the Node deletes its Lease.
				l.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: n.name, UID: node.UID}}
			}
			_, err = leases.Create(ctx, l, metav1.CreateOptions{})
			return err
		}
		if err != nil {
			return err
		}
		l.Spec.RenewTime = &now
		l.Spec.HolderIdentity = ptr.To(n.name)
		_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
		return err
	})
	if err != nil && ctx.Err() == nil {
		// kube-node-lease is created by the API server shortly after start.
		n.log.Debug("lease renewal failed", "err", err)
	}
}

// postStatus writes the node's conditions (heartbeat now), capacity,
// addresses and the port of its log server.
func (n *Node) postStatus(ctx context.Context) error {
	nodes := n.client.CoreV1().Nodes()
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		node, err := nodes.Get(ctx, n.name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		node.Status = n.nodeStatus(node.Status, time.Now())
		_, err = nodes.UpdateStatus(ctx, node, metav1.UpdateOptions{})
		return err
	})
}

func (n *Node) nodeStatus(old v1.NodeStatus, now time.Time) v1.NodeStatus {
	t := metav1.NewTime(now)
	cond := func(typ v1.NodeConditionType, status v1.ConditionStatus, reason, msg string) v1.NodeCondition {
		c := v1.NodeCondition{Type: typ, Status: status, Reason: reason, Message: msg, LastHeartbeatTime: t, LastTransitionTime: t}
		for _, o := range old.Conditions {
			if o.Type == typ && o.Status == status {
				c.LastTransitionTime = o.LastTransitionTime
			}
		}
		return c
	}
	return v1.NodeStatus{
		Capacity:    n.opts.Capacity.DeepCopy(),
		Allocatable: n.opts.Capacity.DeepCopy(),
		Phase:       v1.NodeRunning,
		Conditions: []v1.NodeCondition{
			cond(v1.NodeMemoryPressure, v1.ConditionFalse, "KubeletHasSufficientMemory", "kubenode has sufficient memory available"),
			cond(v1.NodeDiskPressure, v1.ConditionFalse, "KubeletHasNoDiskPressure", "kubenode has no disk pressure"),
			cond(v1.NodePIDPressure, v1.ConditionFalse, "KubeletHasSufficientPID", "kubenode has sufficient PID available"),
			cond(v1.NodeReady, v1.ConditionTrue, "KubeletReady", "kubenode is posting ready status"),
		},
		Addresses: []v1.NodeAddress{
			{Type: v1.NodeInternalIP, Address: "127.0.0.1"},
			{Type: v1.NodeHostName, Address: n.name},
		},
		DaemonEndpoints: v1.NodeDaemonEndpoints{KubeletEndpoint: v1.DaemonEndpoint{Port: int32(n.logPort())}},
		NodeInfo: v1.NodeSystemInfo{
			MachineID:               n.name,
			SystemUUID:              n.name,
			BootID:                  n.name,
			KernelVersion:           "kubenode",
			OSImage:                 "kubenode process node",
			ContainerRuntimeVersion: "kubenode://" + kubeletVersion,
			KubeletVersion:          kubeletVersion,
			OperatingSystem:         "linux",
			Architecture:            runtime.GOARCH,
		},
	}
}
