package kubenode

import (
	"context"
	"fmt"
	"math"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// containerEnv builds a container's environment as the kubelet does: envFrom
// first, then env in order, each value with $(VAR) expanded from the
// variables defined before it; valueFrom reads pod fields, resources,
// ConfigMaps and Secrets. The process gets Options.Env overridden by those
// variables; vars (the container's own) also expand command and args.
func (w *podWorker) containerEnv(ctx context.Context, pod *v1.Pod, c *v1.Container) (env []string, vars map[string]string, err error) {
	vars = map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := vars[k]; !ok {
			order = append(order, k)
		}
		vars[k] = v
	}
	for _, from := range c.EnvFrom {
		data, err := w.envSource(ctx, from)
		if err != nil {
			return nil, nil, err
		}
		for k, v := range data {
			set(from.Prefix+k, v)
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			set(e.Name, expand(e.Value, mappingFuncFor(vars)))
			continue
		}
		v, ok, err := w.envValueFrom(ctx, pod, c, e.ValueFrom)
		if err != nil {
			return nil, nil, fmt.Errorf("env %s: %w", e.Name, err)
		}
		if ok {
			set(e.Name, v)
		}
	}
	for _, kv := range w.n.opts.Env {
		k, _, _ := strings.Cut(kv, "=")
		if _, own := vars[k]; !own {
			env = append(env, kv)
		}
	}
	for _, k := range order {
		env = append(env, k+"="+vars[k])
	}
	return env, vars, nil
}

// envSource reads a whole ConfigMap or Secret for envFrom.
func (w *podWorker) envSource(ctx context.Context, from v1.EnvFromSource) (map[string]string, error) {
	switch {
	case from.ConfigMapRef != nil:
		cm, err := w.n.client.CoreV1().ConfigMaps(w.ns).Get(ctx, from.ConfigMapRef.Name, metav1.GetOptions{})
		if err != nil {
			if ptrTrue(from.ConfigMapRef.Optional) {
				return nil, nil
			}
			return nil, fmt.Errorf("envFrom configmap %s: %w", from.ConfigMapRef.Name, err)
		}
		return cm.Data, nil
	case from.SecretRef != nil:
		s, err := w.n.client.CoreV1().Secrets(w.ns).Get(ctx, from.SecretRef.Name, metav1.GetOptions{})
		if err != nil {
			if ptrTrue(from.SecretRef.Optional) {
				return nil, nil
			}
			return nil, fmt.Errorf("envFrom secret %s: %w", from.SecretRef.Name, err)
		}
		out := map[string]string{}
		for k, v := range s.Data {
			out[k] = string(v)
		}
		return out, nil
	}
	return nil, nil
}

// envValueFrom resolves one valueFrom; ok is false for a missing optional key.
func (w *podWorker) envValueFrom(ctx context.Context, pod *v1.Pod, c *v1.Container, from *v1.EnvVarSource) (v string, ok bool, err error) {
	switch {
	case from.FieldRef != nil:
		v, err := w.podField(pod, from.FieldRef.FieldPath)
		return v, err == nil, err
	case from.ResourceFieldRef != nil:
		v, err := w.resourceField(c, from.ResourceFieldRef)
		return v, err == nil, err
	case from.ConfigMapKeyRef != nil:
		ref := from.ConfigMapKeyRef
		cm, err := w.n.client.CoreV1().ConfigMaps(w.ns).Get(ctx, ref.Name, metav1.GetOptions{})
		if err == nil {
			if v, ok := cm.Data[ref.Key]; ok {
				return v, true, nil
			}
			err = fmt.Errorf("key %q not found", ref.Key)
		}
		if ptrTrue(ref.Optional) {
			return "", false, nil
		}
		return "", false, fmt.Errorf("configmap %s: %w", ref.Name, err)
	case from.SecretKeyRef != nil:
		ref := from.SecretKeyRef
		s, err := w.n.client.CoreV1().Secrets(w.ns).Get(ctx, ref.Name, metav1.GetOptions{})
		if err == nil {
			if v, ok := s.Data[ref.Key]; ok {
				return string(v), true, nil
			}
			err = fmt.Errorf("key %q not found", ref.Key)
		}
		if ptrTrue(ref.Optional) {
			return "", false, nil
		}
		return "", false, fmt.Errorf("secret %s: %w", ref.Name, err)
	}
	return "", false, fmt.Errorf("unsupported valueFrom")
}

// podField is the downward API for env: the field paths Kubernetes allows.
func (w *podWorker) podField(pod *v1.Pod, path string) (string, error) {
	ip := w.ip.String()
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.hostIP", "status.hostIPs":
		return "127.0.0.1", nil
	case "status.podIP", "status.podIPs":
		return ip, nil
	}
	if k, ok := subscript(path, "metadata.labels"); ok {
		return pod.Labels[k], nil
	}
	if k, ok := subscript(path, "metadata.annotations"); ok {
		return pod.Annotations[k], nil
	}
	return "", fmt.Errorf("unsupported fieldRef %q", path)
}

// subscript parses prefix['key'].
func subscript(path, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(path, prefix+"['")
	if !ok || !strings.HasSuffix(rest, "']") {
		return "", false
	}
	return strings.TrimSuffix(rest, "']"), true
}

// resourceField is the downward API for resources, rounded up by the divisor
// as in the kubelet; an unset limit is the node's allocatable.
func (w *podWorker) resourceField(c *v1.Container, ref *v1.ResourceFieldSelector) (string, error) {
	kind, name, ok := strings.Cut(ref.Resource, ".")
	if !ok {
		return "", fmt.Errorf("unsupported resourceFieldRef %q", ref.Resource)
	}
	rn := v1.ResourceName(name)
	var q resource.Quantity
	switch kind {
	case "limits":
		if q, ok = c.Resources.Limits[rn]; !ok {
			q = w.n.opts.Capacity[rn]
		}
	case "requests":
		q = c.Resources.Requests[rn]
	default:
		return "", fmt.Errorf("unsupported resourceFieldRef %q", ref.Resource)
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	if rn == v1.ResourceCPU {
		return fmt.Sprint(int64(math.Ceil(float64(q.MilliValue()) / float64(divisor.MilliValue())))), nil
	}
	return fmt.Sprint(int64(math.Ceil(float64(q.Value()) / float64(divisor.Value())))), nil
}

func ptrTrue(b *bool) bool { return b != nil && *b }
