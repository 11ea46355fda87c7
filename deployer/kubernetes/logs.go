package kubernetes

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"

	"github.com/discovery-platform/discovery/apps"
)

// LogReader reads replicas' output through the pods/log API. Every API
// instance has one (logs are served by any instance, not only the leader
// that runs the reconciler).
type LogReader struct {
	Client          kubernetes.Interface
	NamespacePrefix string
}

// Logs returns up to tail bytes of the end of a replica's output. The API
// counts lines, not bytes, so it asks for enough lines and trims.
func (l LogReader) Logs(ctx context.Context, id apps.ReplicaID, tail int) ([]byte, error) {
	lines := int64(tail/32 + 16)
	ns, name := l.NamespacePrefix+id.Tenant, podName(id)
	b, err := l.Client.CoreV1().Pods(ns).GetLogs(name, &corev1.PodLogOptions{Container: container, TailLines: &lines}).DoRaw(ctx)
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("logs of pod %s/%s: %w", ns, name, apps.ErrNotFound)
	}
	if err != nil {
		return nil, classify(fmt.Errorf("logs of pod %s/%s: %w", ns, name, err))
	}
	if len(b) > tail {
		b = b[len(b)-tail:]
	}
	return b, nil
}

// Logs reads a replica's output (deployer.Runtime).
func (r *Runtime) Logs(ctx context.Context, id apps.ReplicaID, tail int) ([]byte, error) {
	return LogReader{Client: r.client, NamespacePrefix: r.cfg.NamespacePrefix}.Logs(ctx, id, tail)
}
