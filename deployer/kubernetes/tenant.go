package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	netv1ac "k8s.io/client-go/applyconfigurations/networking/v1"

	"github.com/discovery-platform/discovery/deployer"
	"github.com/discovery-platform/discovery/tenants"
)

// Names of the per-tenant objects, one of each in a tenant's namespace.
const (
	QuotaName         = "discovery-quota"
	LimitRangeName    = "discovery-limits"
	NetworkPolicyName = "discovery-isolation"
)

// reapply is how long an applied tenant is trusted before Start applies it
// again (someone may have edited or deleted the objects by hand).
const reapply = 5 * time.Minute

type appliedTenant struct {
	quota *tenants.Quota
	at    time.Time
}

// ensureTenant applies the tenant's namespace objects unless they were
// applied recently with the same quota, and returns the namespace.
func (r *Runtime) ensureTenant(ctx context.Context, tenant string) (string, error) {
	var q *tenants.Quota
	if r.cfg.Quotas != nil {
		got, err := r.cfg.Quotas.Quota(ctx, tenant)
		switch {
		case err == nil:
			q = &got
		case errors.Is(err, tenants.ErrNotFound):
		default:
			return "", fmt.Errorf("quota of tenant %s: %w: %w", tenant, deployer.ErrRuntimeUnavailable, err)
		}
	}
	return r.Namespace(tenant), r.SyncTenant(ctx, tenant, q)
}

// SyncTenant applies the tenant's namespace, replica ServiceAccount,
// NetworkPolicy and (with a quota) ResourceQuota and LimitRange, by
// server-side apply, so running it again changes nothing. It skips the API
// calls when the same quota was applied within the last few minutes.
func (r *Runtime) SyncTenant(ctx context.Context, tenant string, q *tenants.Quota) error {
	r.mu.Lock()
	last, ok := r.tenants[tenant]
	r.mu.Unlock()
	if ok && sameQuota(last.quota, q) && time.Since(last.at) < reapply {
		return nil
	}
	ns := r.Namespace(tenant)
	core := r.client.CoreV1()
	apply := metav1.ApplyOptions{FieldManager: fieldManager, Force: true}
	own := map[string]string{LabelTenant: tenant, LabelManagedBy: managedBy}
	if _, err := core.Namespaces().Apply(ctx, corev1ac.Namespace(ns).WithLabels(own), apply); err != nil {
		return classify(fmt.Errorf("apply namespace %s: %w", ns, err))
	}
	if _, err := core.ServiceAccounts(ns).Apply(ctx, corev1ac.ServiceAccount(ServiceAccount, ns).WithLabels(own).
		WithAutomountServiceAccountToken(false), apply); err != nil {
		return classify(fmt.Errorf("apply serviceaccount %s/%s: %w", ns, ServiceAccount, err))
	}
	if _, err := r.client.NetworkingV1().NetworkPolicies(ns).Apply(ctx, isolation(ns, own), apply); err != nil {
		return classify(fmt.Errorf("apply networkpolicy %s/%s: %w", ns, NetworkPolicyName, err))
	}
	if q != nil {
		if _, err := core.ResourceQuotas(ns).Apply(ctx, corev1ac.ResourceQuota(QuotaName, ns).WithLabels(own).
			WithSpec(corev1ac.ResourceQuotaSpec().WithHard(QuotaHard(*q))), apply); err != nil {
			return classify(fmt.Errorf("apply resourcequota %s/%s: %w", ns, QuotaName, err))
		}
		if err := r.applyLimits(ctx, ns, own, *q); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.tenants[tenant] = appliedTenant{quota: q, at: time.Now()}
	r.mu.Unlock()
	r.log.Debug("tenant namespace applied", "tenant", tenant, "namespace", ns)
	return nil
}

// DeleteTenant deletes the tenant's namespace and with it everything in it.
// The platform calls it once the tenant's last app is gone.
func (r *Runtime) DeleteTenant(ctx context.Context, tenant string) error {
	ns := r.Namespace(tenant)
	err := r.client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
	r.mu.Lock()
	delete(r.tenants, tenant)
	r.mu.Unlock()
	if err == nil || apierrors.IsNotFound(err) {
		r.log.Info("tenant namespace deleted", "tenant", tenant, "namespace", ns)
		return nil
	}
	return classify(fmt.Errorf("delete namespace %s: %w", ns, err))
}

// QuotaHard is the ResourceQuota mirroring a tenant's quota: its replicas
// (all revisions, draining ones included: each is a pod) and, where the
// tenant has a per-replica bound, that bound times its replicas. The
// platform refuses first with a clear error; the ResourceQuota is the
// cluster's own guarantee should anything get past it.
func QuotaHard(q tenants.Quota) corev1.ResourceList {
	hard := corev1.ResourceList{corev1.ResourcePods: *resource.NewQuantity(int64(q.MaxReplicas), resource.DecimalSI)}
	if q.MaxCPUMillis > 0 {
		cpu := *resource.NewMilliQuantity(int64(q.MaxCPUMillis)*int64(q.MaxReplicas), resource.DecimalSI)
		hard[corev1.ResourceRequestsCPU], hard[corev1.ResourceLimitsCPU] = cpu, cpu.DeepCopy()
	}
	if q.MaxMemoryMB > 0 {
		mem := *resource.NewQuantity(int64(q.MaxMemoryMB)*int64(q.MaxReplicas)<<20, resource.BinarySI)
		hard[corev1.ResourceRequestsMemory], hard[corev1.ResourceLimitsMemory] = mem, mem.DeepCopy()
	}
	return hard
}

// applyLimits mirrors the per-replica bounds into a LimitRange: no
// container may ask for more, and one that asks for nothing gets the bound
// as its limit and a small request (a ResourceQuota on requests refuses pods
// without them).
func (r *Runtime) applyLimits(ctx context.Context, ns string, own map[string]string, q tenants.Quota) error {
	maxList, defLimit, defReq := corev1.ResourceList{}, corev1.ResourceList{}, corev1.ResourceList{}
	if q.MaxCPUMillis > 0 {
		maxList[corev1.ResourceCPU] = *resource.NewMilliQuantity(int64(q.MaxCPUMillis), resource.DecimalSI)
		defLimit[corev1.ResourceCPU] = maxList[corev1.ResourceCPU]
		defReq[corev1.ResourceCPU] = *resource.NewMilliQuantity(int64(min(q.MaxCPUMillis, 100)), resource.DecimalSI)
	}
	if q.MaxMemoryMB > 0 {
		maxList[corev1.ResourceMemory] = *resource.NewQuantity(int64(q.MaxMemoryMB)<<20, resource.BinarySI)
		defLimit[corev1.ResourceMemory] = maxList[corev1.ResourceMemory]
		defReq[corev1.ResourceMemory] = *resource.NewQuantity(int64(min(q.MaxMemoryMB, 128))<<20, resource.BinarySI)
	}
	lr := r.client.CoreV1().LimitRanges(ns)
	if len(maxList) == 0 {
		err := lr.Delete(ctx, LimitRangeName, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return classify(fmt.Errorf("delete limitrange %s/%s: %w", ns, LimitRangeName, err))
		}
		return nil
	}
	item := corev1ac.LimitRangeItem().WithType(corev1.LimitTypeContainer).WithMax(maxList).WithDefault(defLimit).WithDefaultRequest(defReq)
	_, err := lr.Apply(ctx, corev1ac.LimitRange(LimitRangeName, ns).WithLabels(own).
		WithSpec(corev1ac.LimitRangeSpec().WithLimits(item)), metav1.ApplyOptions{FieldManager: fieldManager, Force: true})
	if err != nil {
		return classify(fmt.Errorf("apply limitrange %s/%s: %w", ns, LimitRangeName, err))
	}
	return nil
}

// isolation is the namespace's default-deny NetworkPolicy: its pods accept
// traffic only from pods of the same namespace and from the namespace
// Discovery runs in (its gateways and API), never from another tenant. It
// takes a CNI that enforces NetworkPolicy to mean anything.
func isolation(ns string, own map[string]string) *netv1ac.NetworkPolicyApplyConfiguration {
	return netv1ac.NetworkPolicy(NetworkPolicyName, ns).WithLabels(own).WithSpec(netv1ac.NetworkPolicySpec().
		WithPodSelector(metav1ac.LabelSelector()).
		WithPolicyTypes("Ingress").
		WithIngress(netv1ac.NetworkPolicyIngressRule().WithFrom(
			netv1ac.NetworkPolicyPeer().WithPodSelector(metav1ac.LabelSelector()),
			netv1ac.NetworkPolicyPeer().WithNamespaceSelector(metav1ac.LabelSelector().WithMatchLabels(map[string]string{LabelSystem: "true"})),
		)))
}

func sameQuota(a, b *tenants.Quota) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}
