package main

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/discovery-platform/discovery/apps"
	"github.com/discovery-platform/discovery/internal/etcdmaint"
)

// startMaintenance runs etcd's upkeep: alarms into a metric and the log on
// every instance; for the embedded member, scheduled defragmentation and
// recovery from NOSPACE; for an external cluster, defragmentation only with
// --etcd-defrag-external and only on the reconciler's leader (leading), so
// several instances do not defragment one cluster at once.
func (m *Main) startMaintenance(bg context.Context, cli *clientv3.Client, store *apps.Store, leading func() bool) {
	c := m.Config
	cfg := etcdmaint.Config{
		OnCleared: func(ctx context.Context, cl etcdmaint.Cleared) error {
			if cl.Alarm != etcdmaint.NoSpace {
				return nil
			}
			msg := fmt.Sprintf("the platform's store (etcd) was full (NOSPACE alarm) from %s for %s; open sessions kept flowing, writes were refused",
				clock(cl.Since), cl.Until.Sub(cl.Since).Round(100*time.Millisecond))
			if cl.Recovered {
				msg += "; the platform compacted and defragmented it and disarmed the alarm"
			}
			return m.recordIncident(ctx, store, apps.Incident{Type: apps.EventStoreFull, Start: cl.Since, End: cl.Until, Message: msg})
		},
		ScheduleKey: c.EtcdPrefix + "/maintenance/last-defrag",
		Logger:      m.Log.With("part", "etcd-maintenance"),
	}
	if m.etcd != nil {
		cfg.Recover, cfg.Defrag = true, c.EtcdDefrag
	} else if c.EtcdDefragExternal {
		cfg.Defrag, cfg.Act = c.EtcdDefrag, leading
	}
	mt := etcdmaint.New(cli, cfg)
	m.goRun(func() { mt.Run(bg) })
}

// recordOutage tells every app's log about an etcd outage once etcd is back.
func (m *Main) recordOutage(store *apps.Store) func(ctx context.Context, start, end time.Time) error {
	return func(ctx context.Context, start, end time.Time) error {
		msg := fmt.Sprintf("the platform's store (etcd) was unreachable from %s for %s; open sessions and reconnects kept flowing, writes were refused",
			clock(start), end.Sub(start).Round(100*time.Millisecond))
		return m.recordIncident(ctx, store, apps.Incident{Type: apps.EventEtcdOutage, Start: start, End: end, Message: msg})
	}
}

func (m *Main) recordIncident(ctx context.Context, store *apps.Store, in apps.Incident) error {
	recorded, err := store.RecordIncident(ctx, in)
	if err != nil {
		return err
	}
	if recorded {
		m.Log.Info("incident recorded in every app's activity log", "type", in.Type, "start", in.Start.UTC(), "took", in.End.Sub(in.Start).Round(time.Millisecond))
	}
	return nil
}

func clock(t time.Time) string { return t.UTC().Format("15:04:05 MST") }
