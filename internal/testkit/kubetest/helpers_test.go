package kubetest_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	"k8s.io/utils/ptr"

	"github.com/discovery-platform/discovery/internal/testkit/kubetest"
	"github.com/discovery-platform/discovery/internal/testkit/testapp/build"
)

func TestMain(m *testing.M) {
	code := m.Run()
	kubetest.StopShared()
	build.Cleanup()
	os.Exit(code)
}

// testappImage is the image the tests map to the testapp binary.
const testappImage = "example/testapp:1"

// cluster returns the shared cluster with the testapp image mapped, and a
// fresh namespace for t.
func cluster(t *testing.T) (*kubetest.Cluster, string) {
	t.Helper()
	c := kubetest.Shared(t)
	c.SetImage(testappImage, []string{build.Binary(t)})
	return c, c.Namespace(t)
}

// testappPod is a pod as the Discovery runtime makes them: PORT, POD_IP from
// the downward API, HOST=$(POD_IP), an HTTP readiness probe on the port.
func testappPod(name string, env ...corev1.EnvVar) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: ptr.To[int64](10),
			Containers:                    []corev1.Container{testappContainer(env...)},
		},
	}
}

func testappContainer(env ...corev1.EnvVar) corev1.Container {
	return corev1.Container{
		Name:  "app",
		Image: testappImage,
		Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
		Env: append([]corev1.EnvVar{
			{Name: "PORT", Value: "8080"},
			{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
			{Name: "HOST", Value: "$(POD_IP)"},
		}, env...),
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}},
			PeriodSeconds: 1,
		},
	}
}

// waitPod watches pod ns/name until cond holds and returns the pod; a pod
// that does not exist (any more) is passed to cond as nil.
func waitPod(t *testing.T, c *kubetest.Cluster, ns, name string, cond func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	return watchPod(t, c, ns, name, cond)()
}

// watchPod starts watching pod ns/name and returns once the watch has
// synced, so nothing that happens afterwards is missed; the returned
// function waits for cond as waitPod does.
func watchPod(t *testing.T, c *kubetest.Cluster, ns, name string, cond func(*corev1.Pod) bool) func() *corev1.Pod {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	type result struct {
		pod *corev1.Pod
		err error
	}
	synced, done := make(chan struct{}), make(chan result, 1)
	var last *corev1.Pod // written by the watch goroutine, read after done
	go func() {
		lw := cache.NewListWatchFromClient(c.Client.CoreV1().RESTClient(), "pods", ns, fields.OneTermEqualSelector("metadata.name", name))
		ev, err := watchtools.UntilWithSync(ctx, lw, &corev1.Pod{},
			func(store cache.Store) (bool, error) {
				defer close(synced)
				obj, exists, err := store.GetByKey(ns + "/" + name)
				if err != nil || !exists {
					return err == nil && cond(nil), err
				}
				last = obj.(*corev1.Pod)
				return cond(last), nil
			},
			func(ev watch.Event) (bool, error) {
				if ev.Type == watch.Deleted {
					return cond(nil), nil
				}
				last, _ = ev.Object.(*corev1.Pod)
				return cond(last), nil
			})
		r := result{err: err}
		if ev != nil && ev.Type != watch.Deleted {
			r.pod, _ = ev.Object.(*corev1.Pod)
		} else if ev == nil && err == nil {
			r.pod = last // the precondition held
		}
		done <- r
	}()
	select {
	case <-synced:
	case r := <-done:
		done <- r
	}
	return func() *corev1.Pod {
		t.Helper()
		defer cancel()
		r := <-done
		require.NoError(t, r.err, "waiting for pod %s/%s; last seen: %s", ns, name, describe(last))
		return r.pod
	}
}

func describe(p *corev1.Pod) string {
	if p == nil {
		return "nothing"
	}
	return p.Status.String()
}

func createPod(t *testing.T, c *kubetest.Cluster, ns string, p *corev1.Pod) *corev1.Pod {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	created, err := c.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
	require.NoError(t, err)
	return created
}
