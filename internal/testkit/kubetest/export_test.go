package kubetest

import "net"

// HandOutTakenPort makes the next free port the harness picks l's, which is
// taken; restore undoes it.
func HandOutTakenPort(l net.Listener) (restore func()) {
	orig := freePort
	first := true
	freePort = func() (int, error) {
		if first {
			first = false
			return l.Addr().(*net.TCPAddr).Port, nil
		}
		return orig()
	}
	return func() { freePort = orig }
}
