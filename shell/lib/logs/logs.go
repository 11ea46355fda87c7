// Package logs is dsh's view of replica output: one replica's, or every
// replica's of a revision, each line prefixed by its replica.
package logs

import (
	"fmt"
	"strings"

	"github.com/discovery-platform/discovery/client"
	"github.com/discovery-platform/discovery/shell/lib/deploy"
	"github.com/discovery-platform/discovery/shell/lib/dsh"
)

// Replica returns the end (64 KiB) of one replica's output.
func Replica(app, rev, replica string) (string, error) {
	return Tail(app, rev, replica, 0)
}

// Tail returns the last n bytes of one replica's output.
func Tail(app, rev, replica string, n int) (string, error) {
	c, err := dsh.Connected()
	if err != nil {
		return "", err
	}
	return c.ReplicaLogs(dsh.Context(), dsh.Tenant(), app, rev, replica, n)
}

// Revision returns the end of the output of each replica of a revision that
// has not exited, each line prefixed with "<replica>| ".
func Revision(app, rev string) (string, error) {
	r, err := deploy.Get(app, rev)
	if err != nil {
		return "", err
	}
	return ofReplicas(r, 8<<10)
}

// App returns the output of each replica of app's current revision (see
// deploy.Current), each line prefixed with "<replica>| ".
func App(app string) (string, error) {
	r, err := deploy.Current(app)
	if err != nil {
		return "", err
	}
	return ofReplicas(r, 8<<10)
}

func ofReplicas(r client.Revision, tail int) (string, error) {
	var b strings.Builder
	for _, p := range r.Replicas {
		if p.State == "exited" {
			continue
		}
		out, err := Tail(r.App, r.ID, p.ID, tail)
		if err != nil {
			return b.String(), fmt.Errorf("logs of replica %s: %w", p.ID, err)
		}
		for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
			if line != "" {
				b.WriteString(p.ID + "| " + line + "\n")
			}
		}
	}
	if b.Len() == 0 && r.LastOutput != "" {
		// Its replicas are gone (a failed deploy): what the last one that
		// crashed printed, as the platform kept it.
		b.WriteString(fmt.Sprintf("(revision %s is %s; the last output of its last crashed replica:)\n", r.ID, r.State))
		for _, line := range strings.Split(strings.TrimRight(r.LastOutput, "\n"), "\n") {
			b.WriteString("crashed| " + line + "\n")
		}
	}
	if b.Len() == 0 {
		return fmt.Sprintf("(no output from revision %s)", r.ID), nil
	}
	return b.String(), nil
}
