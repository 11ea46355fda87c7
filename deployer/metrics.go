package deployer

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/discovery-platform/discovery/apps"
)

var (
	replicasDesired = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "discovery_replicas_desired", Help: "Replicas the active revision should run (autoscaler or fixed).",
	}, []string{"tenant", "app"})
	replicasActual = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "discovery_replicas", Help: "Replicas recorded per app and revision state.",
	}, []string{"tenant", "app", "state"})
	rollouts = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "discovery_rollouts_total", Help: "Revisions that became active.",
	}, []string{"tenant", "app"})
	retirements = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "discovery_retirements_total", Help: "Revisions retired or failed, by outcome.",
	}, []string{"tenant", "app", "state"})
	// PassesTotal counts reconcile passes over an app (exported for tests
	// that count passes instead of waiting).
	PassesTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "discovery_reconcile_passes_total", Help: "Reconcile passes over one app (after a change, a runtime event or a resync).",
	})
	revisionSessions = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "discovery_revision_sessions", Help: "Sessions per serving revision over every instance, by kind: connections (open sockets), reservations (get-endpoint answers not used yet), leases (app-held).",
	}, []string{"tenant", "app", "revision", "kind"})
)

// metrics records what the reconciler sees; a zero value is ready to use.
type metrics struct{}

func (metrics) desired(rev apps.Revision, n int) {
	replicasDesired.WithLabelValues(rev.Tenant, rev.App).Set(float64(n))
}

func (metrics) transition(rev apps.Revision, to apps.RevisionState) {
	switch to {
	case apps.Active:
		rollouts.WithLabelValues(rev.Tenant, rev.App).Inc()
	case apps.Retired, apps.Failed:
		retirements.WithLabelValues(rev.Tenant, rev.App, string(to)).Inc()
		revisionSessions.DeletePartialMatch(prometheus.Labels{"tenant": rev.Tenant, "app": rev.App, "revision": rev.ID})
	}
}

func (metrics) observe(snap apps.Snapshot, sessions SessionCounter) {
	byState := map[string]int{}
	for _, r := range snap.Replicas {
		byState[string(r.State)]++
	}
	for _, st := range []apps.ReplicaState{apps.ReplicaStarting, apps.ReplicaReady, apps.ReplicaUnhealthy, apps.ReplicaStopping, apps.ReplicaExited} {
		replicasActual.WithLabelValues(snap.App.Tenant, snap.App.Name, string(st)).Set(float64(byState[string(st)]))
	}
	for _, rev := range snap.Revisions {
		if rev.State.Serving() {
			n := sessions.Revision(rev.Tenant, rev.App, rev.ID)
			revisionSessions.WithLabelValues(rev.Tenant, rev.App, rev.ID, "connections").Set(float64(n.Connections))
			revisionSessions.WithLabelValues(rev.Tenant, rev.App, rev.ID, "reservations").Set(float64(n.Reservations))
			revisionSessions.WithLabelValues(rev.Tenant, rev.App, rev.ID, "leases").Set(float64(n.Leases))
		}
	}
	if !snap.App.Autoscaled() {
		replicasDesired.WithLabelValues(snap.App.Tenant, snap.App.Name).Set(float64(snap.App.Replicas))
	}
}

// forget drops a deleted app's series, so labels of gone apps do not pile up.
func (metrics) forget(a apps.App) {
	l := prometheus.Labels{"tenant": a.Tenant, "app": a.Name}
	for _, v := range []*prometheus.GaugeVec{replicasDesired, replicasActual, revisionSessions} {
		v.DeletePartialMatch(l)
	}
	for _, v := range []*prometheus.CounterVec{rollouts, retirements} {
		v.DeletePartialMatch(l)
	}
}
