package client

import (
	"fmt"
	"sort"
	"strings"
)

// Sessions is an app's open sessions (connections, reservations and
// app-held leases, over every gateway) per serving revision and replica.
type Sessions struct {
	// Revisions maps each pending, starting, active or draining revision to
	// its sessions; Replicas maps their replicas. These are the totals: what
	// keeps a revision from retiring and counts against max_sessions.
	Revisions map[string]int `json:"revisions"`
	Replicas  map[string]int `json:"replicas"`
	// RevisionKinds and ReplicaKinds split the same counts by kind (nil
	// from a platform that does not split them).
	RevisionKinds map[string]SessionKinds `json:"revision_kinds,omitempty"`
	ReplicaKinds  map[string]SessionKinds `json:"replica_kinds,omitempty"`
	// Known is false until the platform's session table has loaded.
	Known bool `json:"known"`
}

// SessionKinds is one count of sessions split by kind.
type SessionKinds struct {
	// Connections are open sockets through the gateways.
	Connections int `json:"connections"`
	// Reservations are get-endpoint answers no socket has used yet: each
	// holds a place for the app's reservation_ttl.
	Reservations int `json:"reservations"`
	// Leases are app-held leases (see TakeLease).
	Leases int `json:"leases"`
}

// Total is what the kinds add up to.
func (k SessionKinds) Total() int { return k.Connections + k.Reservations + k.Leases }

// String is "1 connection, 2 reservations", with ", 1 lease" when there
// are any.
func (k SessionKinds) String() string {
	s := count(k.Connections, "connection") + ", " + count(k.Reservations, "reservation")
	if k.Leases > 0 {
		s += ", " + count(k.Leases, "lease")
	}
	return s
}

func count(n int, one string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %ss", n, one)
}

// Revision is a revision's sessions by kind; ok is false when the platform
// did not split them (or the revision is not serving).
func (s Sessions) Revision(id string) (k SessionKinds, ok bool) {
	k, ok = s.RevisionKinds[id]
	return k, ok
}

// Replica is a replica's sessions by kind; ok as for Revision.
func (s Sessions) Replica(id string) (k SessionKinds, ok bool) {
	k, ok = s.ReplicaKinds[id]
	return k, ok
}

// String is one line: each serving revision's total, with its kinds when it
// has any ("sessions: 9d00cc18 2 (1 connection, 1 reservation), 5be2a1f0 0").
func (s Sessions) String() string {
	if len(s.Revisions) == 0 {
		return "no serving revision"
	}
	ids := make([]string, 0, len(s.Revisions))
	for id := range s.Revisions {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprintf("%s %d", id, s.Revisions[id])
		if k, ok := s.Revision(id); ok && k.Total() > 0 {
			parts[i] += " (" + k.String() + ")"
		}
	}
	out := "sessions: " + strings.Join(parts, ", ")
	if !s.Known {
		out += " (the platform's session table is still loading)"
	}
	return out
}
