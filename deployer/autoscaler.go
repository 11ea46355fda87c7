package deployer

import (
	"sort"
	"time"
)

// Policy is an app's scaling policy as the autoscaler needs it.
type Policy struct {
	Min, Max int
	// Target is the sessions per replica the autoscaler aims at.
	Target int
	// ScaleDownDelay is how long a replica must have been empty to be removed.
	ScaleDownDelay time.Duration
}

// ReplicaLoad is one replica of the active revision.
type ReplicaLoad struct {
	ID       string
	Ready    bool
	Sessions int
	// EmptySince is when it last had a session, or when it started if it never
	// had one.
	EmptySince time.Time
}

// Scale is the autoscaler's answer.
type Scale struct {
	// Desired is how many replicas the revision should run after this step.
	Desired int
	// Remove names the replicas to stop now (all empty for ScaleDownDelay).
	Remove []string
	// Capped is set when demand wants more than Max.
	Capped bool
}

// Autoscale sizes a revision from its sessions (Agones' buffer policy, by
// sessions): enough replicas for total/Target, within [Min, Max]. Scale-up is
// immediate; scale-down only removes replicas that have been empty for
// ScaleDownDelay, never one with a session, so Desired never drops below what
// is busy. total may exceed the replicas' sum: demand waiting for a replica
// (a cold start) and app-held leases count too.
func Autoscale(p Policy, replicas []ReplicaLoad, total int, now time.Time) Scale {
	need := 0
	if total > 0 && p.Target > 0 {
		need = (total + p.Target - 1) / p.Target
	}
	want := max(need, p.Min)
	capped := want > p.Max
	want = min(want, p.Max)
	n := len(replicas)
	if want >= n {
		return Scale{Desired: want, Capped: capped}
	}
	var idle []ReplicaLoad
	for _, r := range replicas {
		if r.Sessions == 0 && now.Sub(r.EmptySince) >= p.ScaleDownDelay {
			idle = append(idle, r)
		}
	}
	// Not-ready replicas first (they serve nobody), then the longest idle.
	sort.SliceStable(idle, func(i, j int) bool {
		if idle[i].Ready != idle[j].Ready {
			return !idle[i].Ready
		}
		return idle[i].EmptySince.Before(idle[j].EmptySince)
	})
	k := min(n-want, len(idle))
	out := Scale{Desired: n - k, Capped: capped}
	for _, r := range idle[:k] {
		out.Remove = append(out.Remove, r.ID)
	}
	return out
}
