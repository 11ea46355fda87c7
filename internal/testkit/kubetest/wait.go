package kubetest

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
)

// notReadyTaint is put on every new Node by the API server (admission
// plugin TaintNodesByCondition) and removed by the node lifecycle controller
// once the node reports Ready; the scheduler binds nothing to a node that
// still has it.
const notReadyTaint = "node.kubernetes.io/not-ready"

// waitSchedulable waits, on a watch, until every node is Ready without the
// not-ready taint, and until the default ServiceAccount exists (without it
// the API server refuses pods in the default namespace).
func (c *Cluster) waitSchedulable(ctx context.Context) error {
	want := map[string]bool{}
	for _, n := range c.Nodes {
		want[n.Name()] = true
	}
	ready := map[string]bool{}
	lw := cache.NewListWatchFromClient(c.Client.CoreV1().RESTClient(), "nodes", "", fields.Everything())
	_, err := watchtools.UntilWithSync(ctx, lw, &corev1.Node{}, nil, func(ev watch.Event) (bool, error) {
		if n, ok := ev.Object.(*corev1.Node); ok && want[n.Name] {
			ready[n.Name] = Schedulable(n)
		}
		for name := range want {
			if !ready[name] {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("kubetest: nodes not schedulable (ready: %v): %w", ready, err)
	}
	if err := c.waitServiceAccount(ctx, "default", "default"); err != nil {
		return fmt.Errorf("kubetest: controller manager: %w", err)
	}
	return nil
}

// Schedulable reports whether n is Ready and free of the not-ready taint.
func Schedulable(n *corev1.Node) bool {
	if slices.ContainsFunc(n.Spec.Taints, func(t corev1.Taint) bool { return t.Key == notReadyTaint }) {
		return false
	}
	return slices.ContainsFunc(n.Status.Conditions, func(c corev1.NodeCondition) bool {
		return c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue
	})
}

// waitServiceAccount waits on a watch until ServiceAccount namespace/name exists.
func (c *Cluster) waitServiceAccount(ctx context.Context, namespace, name string) error {
	lw := cache.NewListWatchFromClient(c.Client.CoreV1().RESTClient(), "serviceaccounts", namespace,
		fields.OneTermEqualSelector("metadata.name", name))
	_, err := watchtools.UntilWithSync(ctx, lw, &corev1.ServiceAccount{}, nil, func(ev watch.Event) (bool, error) {
		return ev.Type != watch.Deleted, nil
	})
	if err != nil {
		return fmt.Errorf("service account %s/%s: %w", namespace, name, err)
	}
	return nil
}

// WaitFor lists and then watches the objects of resource (e.g. "pods",
// through client = c.Client.CoreV1().RESTClient(); "deployments" through
// AppsV1's) in namespace that match the field selector, until cond holds
// for an event, and returns that event's object. Every wait of the harness
// is such a watch bounded by ctx, never a sleep.
func (c *Cluster) WaitFor(ctx context.Context, client cache.Getter, resource, namespace string, selector fields.Selector, obj runtime.Object, cond func(watch.Event) (bool, error)) (runtime.Object, error) {
	lw := cache.NewListWatchFromClient(client, resource, namespace, selector)
	ev, err := watchtools.UntilWithSync(ctx, lw, obj, nil, cond)
	if err != nil {
		return nil, err
	}
	return ev.Object, nil
}
