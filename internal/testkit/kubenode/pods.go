package kubenode

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
)

// watchPods starts an informer over the pods bound to this node (the same
// field selector the kubelet uses) and hands each pod to its worker: one
// goroutine per pod UID that owns the pod's process and status, so a pod's
// events are handled in order and two pods never wait on each other.
func (n *Node) watchPods(ctx context.Context) error {
	selector := fields.OneTermEqualSelector("spec.nodeName", n.name).String()
	factory := informers.NewSharedInformerFactoryWithOptions(n.client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = selector }))
	inf := factory.Core().V1().Pods().Informer()
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { n.podChanged(obj) },
		UpdateFunc: func(_, obj any) { n.podChanged(obj) },
		DeleteFunc: n.podDeleted,
	})
	if err != nil {
		return fmt.Errorf("kubenode: pod watch: %w", err)
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		inf.Run(n.ctx.Done())
	}()
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return fmt.Errorf("kubenode: pod watch did not sync: %w", context.Cause(ctx))
	}
	return nil
}

func (n *Node) podChanged(obj any) {
	pod, ok := obj.(*v1.Pod)
	if !ok {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ctx.Err() != nil {
		return
	}
	w := n.workers[pod.UID]
	if w == nil {
		w = newPodWorker(n, pod)
		n.workers[pod.UID] = w
		n.byName[pod.Namespace+"/"+pod.Name] = w
		// The worker reads its first pod from update: hand it over first.
		w.update(pod, false)
		n.wg.Add(1)
		go w.run(n.ctx)
		return
	}
	w.update(pod, false)
}

func (n *Node) podDeleted(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	pod, ok := obj.(*v1.Pod)
	if !ok {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if w := n.workers[pod.UID]; w != nil {
		w.update(pod, true)
	}
}

// forget removes a finished worker from the node's tables.
func (n *Node) forget(w *podWorker) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.workers, w.uid)
	if key := w.ns + "/" + w.name; n.byName[key] == w {
		delete(n.byName, key)
	}
}
