package deployer

import "github.com/discovery-platform/discovery/apps"

type replicaT = apps.Replica

func replicasOf(ids ...string) []apps.Replica {
	out := make([]apps.Replica, len(ids))
	for i, id := range ids {
		out[i] = apps.Replica{ID: id, State: apps.ReplicaReady}
	}
	return out
}
