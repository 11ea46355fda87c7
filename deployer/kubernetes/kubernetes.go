// Package kubernetes is the production runtime: each replica is a Pod in its
// tenant's namespace (<prefix><tenant>), created, observed and deleted through
// client-go. What it observes comes from a pod informer (a watch-fed cache),
// never from polling; per tenant it keeps the namespace, a ResourceQuota and
// LimitRange mirroring the tenant's quota, a NetworkPolicy that isolates the
// namespace, and the replicas' ServiceAccount.
//
// Replicas are bare Pods, one per replica, with restartPolicy Never (see pod
// in pods.go for why): the platform removes exactly the pods it chose, and
// only empty ones, one at a time; a Deployment or ReplicaSet scale-down would
// pick its own victims.
package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/discovery-platform/discovery/apps"
	"github.com/discovery-platform/discovery/deployer"
)

var (
	// ErrRunning: Remove of a replica whose pod has not finished.
	ErrRunning = errors.New("kubernetes: replica still running")
	// ErrNoImage: the revision names no image (a command alone runs only on
	// the process runtime).
	ErrNoImage = errors.New("kubernetes: a revision needs an image on the kubernetes runtime")
)

// fieldManager owns the fields the platform writes (server-side apply).
const fieldManager = "discovery"

// Config configures a Runtime.
type Config struct {
	// Client talks to the cluster: in-cluster with the platform's
	// ServiceAccount, or from a kubeconfig (cmd/platform builds it).
	Client kubernetes.Interface
	// NamespacePrefix maps tenant t to namespace <prefix>t.
	NamespacePrefix string
	// Quotas gives each tenant's quota, mirrored into its namespace; nil
	// mirrors none.
	Quotas deployer.QuotaSource
	// Env is added to every replica's environment (DISCOVERY_API).
	Env map[string]string
	// SyncTimeout bounds the wait for the informer's first list; default 30s.
	SyncTimeout time.Duration
	// Logger receives what the runtime does; default slog.Default().
	Logger *slog.Logger
}

// Runtime runs replicas as Pods. It implements deployer.Runtime.
type Runtime struct {
	cfg     Config
	client  kubernetes.Interface
	log     *slog.Logger
	factory informers.SharedInformerFactory
	pods    cache.SharedIndexInformer
	lister  corelisters.PodLister
	changes chan apps.Ref
	stop    chan struct{}
	once    sync.Once

	mu sync.Mutex
	// ready remembers pods seen ready, so one failing its probe afterwards
	// reads as unhealthy rather than starting.
	ready map[types.UID]bool
	// tenants remembers the quota last applied to each namespace.
	tenants map[string]appliedTenant
}

var _ deployer.Runtime = (*Runtime)(nil)

// byApp indexes pods by tenant/app, List's one question.
const byApp = "tenant-app"

// New starts the pod informer (pods Discovery manages, in every namespace)
// and returns once its cache holds the cluster's pods, so the first List
// after a platform restart already sees every running replica.
func New(ctx context.Context, cfg Config) (*Runtime, error) {
	if cfg.Client == nil {
		return nil, errors.New("kubernetes: Config.Client is required")
	}
	if cfg.SyncTimeout <= 0 {
		cfg.SyncTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	r := &Runtime{
		cfg: cfg, client: cfg.Client, log: cfg.Logger,
		changes: make(chan apps.Ref, 256),
		stop:    make(chan struct{}),
		ready:   map[types.UID]bool{},
		tenants: map[string]appliedTenant{},
	}
	r.factory = informers.NewSharedInformerFactoryWithOptions(cfg.Client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = LabelManagedBy + "=" + managedBy }))
	podInformer := r.factory.Core().V1().Pods()
	r.pods, r.lister = podInformer.Informer(), podInformer.Lister()
	if err := r.pods.AddIndexers(cache.Indexers{byApp: func(obj any) ([]string, error) {
		p, ok := obj.(*corev1.Pod)
		if !ok {
			return nil, nil
		}
		id, ok := idOf(p)
		if !ok {
			return nil, nil
		}
		return []string{id.Tenant + "/" + id.App}, nil
	}}); err != nil {
		return nil, err
	}
	if _, err := r.pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    r.changed,
		UpdateFunc: func(_, obj any) { r.changed(obj) },
		DeleteFunc: r.deleted,
	}); err != nil {
		return nil, err
	}
	r.factory.Start(r.stop)
	sctx, cancel := context.WithTimeout(ctx, cfg.SyncTimeout)
	defer cancel()
	if !cache.WaitForCacheSync(sctx.Done(), r.pods.HasSynced) {
		r.Close()
		return nil, fmt.Errorf("kubernetes: pod cache not synced within %s: %w", cfg.SyncTimeout, deployer.ErrRuntimeUnavailable)
	}
	return r, nil
}

// Close stops the informer. Pods keep running: they outlive the platform.
func (r *Runtime) Close() error {
	r.once.Do(func() {
		close(r.stop)
		r.factory.Shutdown()
	})
	return nil
}

// Changes names an app each time one of its pods changes.
func (r *Runtime) Changes() <-chan apps.Ref { return r.changes }

func (r *Runtime) changed(obj any) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	if PodReady(p) {
		r.mu.Lock()
		r.ready[p.UID] = true
		r.mu.Unlock()
	}
	r.notify(p)
}

func (r *Runtime) deleted(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	r.mu.Lock()
	delete(r.ready, p.UID)
	r.mu.Unlock()
	r.notify(p)
}

func (r *Runtime) notify(p *corev1.Pod) {
	id, ok := idOf(p)
	if !ok {
		return
	}
	select {
	case r.changes <- apps.Ref{Tenant: id.Tenant, App: id.App}:
	default: // the reconciler's resync covers a missed change
	}
}

// Namespace is tenant's namespace.
func (r *Runtime) Namespace(tenant string) string { return r.cfg.NamespacePrefix + tenant }

// Start creates the replica's pod (and its tenant's namespace objects the
// first time). A pod that already exists is left alone.
func (r *Runtime) Start(ctx context.Context, spec deployer.ReplicaSpec) error {
	if spec.Image == "" {
		return ErrNoImage
	}
	ns, err := r.ensureTenant(ctx, spec.Tenant)
	if err != nil {
		return err
	}
	p := pod(spec, ns, r.cfg.Env)
	_, err = r.client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{FieldManager: fieldManager})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	if err != nil {
		return classify(fmt.Errorf("create pod %s/%s: %w", ns, p.Name, err))
	}
	r.log.Info("pod created", "tenant", spec.Tenant, "app", spec.App, "revision", spec.Revision, "replica", spec.Replica, "pod", ns+"/"+p.Name)
	return nil
}

// Stop deletes the replica's pod with grace: the kubelet sends SIGTERM, and
// SIGKILL once grace has passed. A finished pod is left for Remove (its log
// is still readable); an unknown one is no error.
func (r *Runtime) Stop(ctx context.Context, id apps.ReplicaID, grace time.Duration) error {
	ns, name := r.Namespace(id.Tenant), podName(id)
	if p, err := r.lister.Pods(ns).Get(name); err == nil && finished(p) {
		return nil
	}
	secs := graceSeconds(grace)
	err := r.client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &secs})
	if err == nil || apierrors.IsNotFound(err) {
		return nil
	}
	return classify(fmt.Errorf("delete pod %s/%s: %w", ns, name, err))
}

// List is what the informer's cache holds of one app's pods.
func (r *Runtime) List(_ context.Context, tenant, app string) ([]deployer.Observed, error) {
	objs, err := r.pods.GetIndexer().ByIndex(byApp, tenant+"/"+app)
	if err != nil {
		return nil, err
	}
	out := make([]deployer.Observed, 0, len(objs))
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, obj := range objs {
		p := obj.(*corev1.Pod)
		id, ok := idOf(p)
		if !ok || p.Namespace != r.Namespace(id.Tenant) {
			continue // not ours to run: a pod labelled by hand elsewhere
		}
		out = append(out, observe(p, id, r.ready[p.UID]))
	}
	return out, nil
}

// Remove deletes a finished replica's pod (and so its log).
func (r *Runtime) Remove(ctx context.Context, id apps.ReplicaID) error {
	ns, name := r.Namespace(id.Tenant), podName(id)
	p, err := r.lister.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if !finished(p) {
		return fmt.Errorf("remove %s/%s: %w", ns, name, ErrRunning)
	}
	zero := int64(0)
	uid := p.UID
	err = r.client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &uid}})
	if err == nil || apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return classify(fmt.Errorf("remove pod %s/%s: %w", ns, name, err))
}

func finished(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

// classify marks errors that say nothing about the replica (the API server
// unreachable or busy, the namespace's ResourceQuota momentarily full while
// terminating pods still count, RBAC not granted yet) as
// deployer.ErrRuntimeUnavailable, so the reconciler retries instead of
// failing the revision. What remains (an invalid pod) is the revision's fault.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err):
		return err
	case apierrors.IsForbidden(err), apierrors.IsTooManyRequests(err), apierrors.IsServerTimeout(err),
		apierrors.IsTimeout(err), apierrors.IsServiceUnavailable(err), apierrors.IsInternalError(err),
		apierrors.IsUnexpectedServerError(err), errors.Is(err, context.DeadlineExceeded), isNetwork(err):
		return fmt.Errorf("%w: %w", deployer.ErrRuntimeUnavailable, err)
	}
	return err
}

// isNetwork: the request never got an answer (client-go returns the
// transport's *url.Error, a net.Error, for refused, reset and timed-out calls).
func isNetwork(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}
