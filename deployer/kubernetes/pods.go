package kubernetes

import (
	"fmt"
	"maps"
	"math"
	"net"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/discovery-platform/discovery/apps"
	"github.com/discovery-platform/discovery/deployer"
)

// Labels every object the runtime creates carries. A pod's four discovery/*
// labels name its replica, so the informer's cache is the whole observed state.
const (
	LabelTenant    = "discovery/tenant"
	LabelApp       = "discovery/app"
	LabelRevision  = "discovery/revision"
	LabelReplica   = "discovery/replica"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	managedBy      = "discovery"
	// LabelSystem marks the namespace Discovery itself runs in; tenant
	// namespaces accept traffic from it (the gateways) and from themselves.
	LabelSystem = "discovery/system"

	// container is the name of a replica pod's one container.
	container = "app"
	// ServiceAccount is the identity replica pods run as: one per tenant
	// namespace, with no API token mounted (replicas talk to the platform's
	// lease API over plain HTTP with their capability, not to Kubernetes).
	ServiceAccount = "discovery-replica"
	// DefaultPort is the container port when the app declares none.
	DefaultPort = 8080
)

// podName is a replica's pod name: unique within the tenant's namespace
// because app names are, and readable in kubectl.
func podName(id apps.ReplicaID) string {
	return id.App + "-" + id.Revision + "-" + id.Replica
}

// idOf reads a replica's identity back from its pod's labels.
func idOf(pod *corev1.Pod) (apps.ReplicaID, bool) {
	l := pod.Labels
	id := apps.ReplicaID{Tenant: l[LabelTenant], App: l[LabelApp], Revision: l[LabelRevision], Replica: l[LabelReplica]}
	return id, id.Tenant != "" && id.App != "" && id.Revision != "" && id.Replica != ""
}

func labels(id apps.ReplicaID) map[string]string {
	return map[string]string{
		LabelTenant: id.Tenant, LabelApp: id.App, LabelRevision: id.Revision, LabelReplica: id.Replica,
		LabelManagedBy: managedBy,
	}
}

// pod is the Pod that runs one replica. It is a bare pod, not part of a
// ReplicaSet: the reconciler removes the exact replicas it chose (only empty
// ones), which a controller's scale-down would not honour. restartPolicy
// Never, because a replica's identity is its in-memory state: a container
// restarted in place would have lost its players' state while their endpoint
// URLs still pin it, and the reconciler counts every exit to fail a
// crash-looping revision. A crashed replica is replaced by a new one.
func pod(spec deployer.ReplicaSpec, namespace string, env map[string]string) *corev1.Pod {
	port := spec.Port
	if port <= 0 {
		port = DefaultPort
	}
	grace := graceSeconds(spec.ShutdownGrace)
	noToken := false
	c := corev1.Container{
		Name:            container,
		Image:           spec.Image,
		Command:         spec.Command,
		Ports:           []corev1.ContainerPort{{Name: "app", ContainerPort: int32(port), Protocol: corev1.ProtocolTCP}},
		Env:             podEnv(spec, port, env),
		ReadinessProbe:  probe(spec.HealthPath, port),
		Resources:       requirements(spec.Resources),
		ImagePullPolicy: corev1.PullIfNotPresent,
		// The last output is what the reconciler puts in a crash event.
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: podName(spec.ReplicaID), Namespace: namespace, Labels: labels(spec.ReplicaID)},
		Spec: corev1.PodSpec{
			Containers:                    []corev1.Container{c},
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: &grace,
			ServiceAccountName:            ServiceAccount,
			AutomountServiceAccountToken:  &noToken,
			EnableServiceLinks:            &noToken,
		},
	}
}

// podEnv is the revision's environment, then the platform's: HOST is the
// pod's own IP (through the downward API), so an app that listens on
// $HOST:$PORT is reachable by the gateway and nothing else on the node.
func podEnv(spec deployer.ReplicaSpec, port int, extra map[string]string) []corev1.EnvVar {
	var out []corev1.EnvVar
	for _, k := range sortedKeys(spec.Env) {
		out = append(out, corev1.EnvVar{Name: k, Value: spec.Env[k]})
	}
	for _, k := range sortedKeys(extra) {
		out = append(out, corev1.EnvVar{Name: k, Value: extra[k]})
	}
	return append(out,
		corev1.EnvVar{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
		corev1.EnvVar{Name: "HOST", Value: "$(POD_IP)"},
		corev1.EnvVar{Name: "PORT", Value: strconv.Itoa(port)},
		corev1.EnvVar{Name: "DISCOVERY_TENANT", Value: spec.Tenant},
		corev1.EnvVar{Name: "DISCOVERY_APP", Value: spec.App},
		corev1.EnvVar{Name: "DISCOVERY_REVISION", Value: spec.Revision},
		corev1.EnvVar{Name: "DISCOVERY_REPLICA", Value: spec.Replica},
	)
}

// probe is the readiness probe: HTTP GET on the health path, else a TCP
// connect. Once a second, as the process runtime probes.
func probe(path string, port int) *corev1.Probe {
	p := &corev1.Probe{PeriodSeconds: 1, TimeoutSeconds: 1, FailureThreshold: 3, SuccessThreshold: 1}
	target := intstr.FromInt32(int32(port))
	if path != "" {
		p.HTTPGet = &corev1.HTTPGetAction{Path: path, Port: target}
	} else {
		p.TCPSocket = &corev1.TCPSocketAction{Port: target}
	}
	return p
}

// requirements asks for the revision's resources as both request and limit
// (Guaranteed QoS: a game server should not be the first evicted). Unset
// values are left to the namespace's LimitRange defaults.
func requirements(r *apps.Resources) corev1.ResourceRequirements {
	var req corev1.ResourceRequirements
	if r == nil {
		return req
	}
	list := corev1.ResourceList{}
	if r.CPUMillis > 0 {
		list[corev1.ResourceCPU] = *resource.NewMilliQuantity(int64(r.CPUMillis), resource.DecimalSI)
	}
	if r.MemoryMB > 0 {
		list[corev1.ResourceMemory] = *resource.NewQuantity(int64(r.MemoryMB)<<20, resource.BinarySI)
	}
	if len(list) > 0 {
		req.Requests, req.Limits = list, list.DeepCopy()
	}
	return req
}

// observe is the runtime's view of a pod, in the reconciler's terms.
func observe(p *corev1.Pod, id apps.ReplicaID, wasReady bool) deployer.Observed {
	o := deployer.Observed{ReplicaID: id, StartedAt: p.CreationTimestamp.Time}
	if p.Status.StartTime != nil {
		o.StartedAt = p.Status.StartTime.Time
	}
	if p.Status.PodIP != "" {
		o.Address = net.JoinHostPort(p.Status.PodIP, strconv.Itoa(containerPort(p)))
	}
	switch {
	case p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed:
		o.State, o.Exit = apps.ReplicaExited, exitOf(p)
	case p.DeletionTimestamp != nil:
		o.State = apps.ReplicaStopping
	case p.Status.Phase == corev1.PodRunning && PodReady(p):
		o.State = apps.ReplicaReady
	case wasReady:
		o.State = apps.ReplicaUnhealthy
	default:
		o.State = apps.ReplicaStarting
	}
	return o
}

// PodReady reports whether a pod's Ready condition is true (false for nil).
func PodReady(p *corev1.Pod) bool {
	if p == nil {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func containerPort(p *corev1.Pod) int {
	for _, c := range p.Spec.Containers {
		for _, port := range c.Ports {
			return int(port.ContainerPort)
		}
	}
	return DefaultPort
}

// exitOf says why a finished pod ended, in the process runtime's words
// where it can ("exit status 1", "signal: killed").
func exitOf(p *corev1.Pod) string {
	for _, cs := range p.Status.ContainerStatuses {
		t := cs.State.Terminated
		if t == nil {
			continue
		}
		switch {
		case t.Signal == 9:
			return "signal: killed"
		case t.Signal != 0:
			return fmt.Sprintf("signal %d", t.Signal)
		case t.Reason == "OOMKilled":
			return "OOMKilled"
		default:
			return fmt.Sprintf("exit status %d", t.ExitCode)
		}
	}
	if p.Status.Reason != "" || p.Status.Message != "" {
		return fmt.Sprintf("pod %s: %s %s", p.Status.Phase, p.Status.Reason, p.Status.Message)
	}
	return "pod " + string(p.Status.Phase)
}

// graceSeconds turns a grace into the API's whole seconds. Zero would mean
// "force delete" (the pod object goes while its container may still run),
// so a stop always gives at least a second.
func graceSeconds(d time.Duration) int64 {
	return max(int64(math.Ceil(d.Seconds())), 1)
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }
