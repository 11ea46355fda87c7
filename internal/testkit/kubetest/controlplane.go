package kubetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"
)

// secrets are the files the control plane is started with, in the cluster dir.
type secrets struct {
	caPEM             []byte // the serving certificate's CA, for clients
	certFile, keyFile string // the API server's serving certificate
	saKeyFile         string // service-account signing key (ECDSA)
	tokenFile         string // static tokens: the admin's
	token             string
}

// writeSecrets generates the serving certificate (for 127.0.0.1 and the
// names in-cluster clients use), the service-account key and an admin token
// in group system:masters.
func writeSecrets(dir string) (*secrets, error) {
	s := &secrets{
		certFile: filepath.Join(dir, "apiserver.crt"), keyFile: filepath.Join(dir, "apiserver.key"),
		saKeyFile: filepath.Join(dir, "sa.key"), tokenFile: filepath.Join(dir, "tokens.csv"),
	}
	certPEM, keyPEM, err := certutil.GenerateSelfSignedCertKey("127.0.0.1", []net.IP{net.ParseIP(serviceIP)},
		[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"})
	if err != nil {
		return nil, err
	}
	// The first block is the serving certificate, the second its CA.
	_, remaining := pem.Decode(certPEM)
	if ca, _ := pem.Decode(remaining); ca != nil {
		s.caPEM = pem.EncodeToMemory(ca)
	}
	saKey, err := keyutil.MakeEllipticPrivateKeyPEM()
	if err != nil {
		return nil, err
	}
	tok := make([]byte, 16)
	if _, err := rand.Read(tok); err != nil {
		return nil, err
	}
	s.token = hex.EncodeToString(tok)
	for path, data := range map[string][]byte{
		s.certFile:                   certPEM,
		s.keyFile:                    keyPEM,
		filepath.Join(dir, "ca.crt"): s.caPEM,
		s.saKeyFile:                  saKey,
		s.tokenFile:                  []byte(s.token + `,admin,admin,"system:masters"` + "\n"),
	} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// serviceCIDR is the Service IP range; its first address is the kubernetes
// Service's. Nothing routes it: pods reach each other by pod IP.
const (
	serviceCIDR = "10.96.0.0/16"
	serviceIP   = "10.96.0.1"
)

// apiServerArgs are the API server's flags. Beside the required ones:
// --endpoint-reconciler-type=none, because the kubernetes Endpoints would
// have to hold the loopback advertise address, which Endpoints validation
// refuses; --enable-priority-and-fairness=false, one controller fewer to
// start on a 2-core machine; --kubelet-preferred-address-types=InternalIP,
// so pods/log dials the node at 127.0.0.1 and the log server's port.
func apiServerArgs(dir string, s *secrets, etcdURL string, port int) []string {
	return []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + filepath.Join(dir, "apiserver-certs"),
		"--tls-cert-file=" + s.certFile,
		"--tls-private-key-file=" + s.keyFile,
		"--service-account-key-file=" + s.saKeyFile,
		"--service-account-signing-key-file=" + s.saKeyFile,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--token-auth-file=" + s.tokenFile,
		"--authorization-mode=RBAC",
		"--service-cluster-ip-range=" + serviceCIDR,
		"--kubelet-preferred-address-types=InternalIP",
		"--endpoint-reconciler-type=none",
		"--enable-priority-and-fairness=false",
		"--allow-privileged=true",
		"--profiling=false",
	}
}

// controllerManagerArgs: no serving port at all (--secure-port=0), no leader
// election (one instance), and the service-account key so the token
// controller can sign; --root-ca-file fills the kube-root-ca.crt ConfigMaps.
func controllerManagerArgs(dir, kubeconfig string, s *secrets) []string {
	return []string{
		"--kubeconfig=" + kubeconfig,
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		"--secure-port=0",
		"--service-account-private-key-file=" + s.saKeyFile,
		"--root-ca-file=" + filepath.Join(dir, "ca.crt"),
		"--profiling=false",
	}
}

func schedulerArgs(kubeconfig string) []string {
	return []string{
		"--kubeconfig=" + kubeconfig,
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		"--secure-port=0",
		"--profiling=false",
	}
}

// writeKubeconfig writes an admin kubeconfig for url and returns its rest.Config.
func writeKubeconfig(path, url string, s *secrets) (*rest.Config, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["testcluster"] = &clientcmdapi.Cluster{Server: url, CertificateAuthorityData: s.caPEM}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: s.token}
	cfg.Contexts["testcluster"] = &clientcmdapi.Context{Cluster: "testcluster", AuthInfo: "admin"}
	cfg.CurrentContext = "testcluster"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return nil, err
	}
	rc, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, err
	}
	// Tests create bursts of objects; client-side throttling would only slow them.
	rc.QPS, rc.Burst = 200, 400
	return rc, nil
}

// waitReady polls /readyz until the API server answers ok, its process
// exits, or ctx ends. There is nothing to watch before the server is up.
func waitReady(ctx context.Context, cs kubernetes.Interface, apiserver *child) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil && string(body) == "ok" {
			return nil
		}
		last = err
		if done, exitErr := apiserver.exited(); done {
			return fmt.Errorf("kubetest: kube-apiserver %v; end of its log:\n%s", exitErr, apiserver.tail(4000))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kubetest: kube-apiserver not ready (last: %v): %w; end of its log:\n%s", last, ctx.Err(), apiserver.tail(4000))
		case <-tick.C:
		}
	}
}

// freePort asks the kernel for a free loopback port (a variable so a test
// can hand out a taken one).
var freePort = func() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
