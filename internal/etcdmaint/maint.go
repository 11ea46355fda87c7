// Package etcdmaint keeps the platform's etcd usable over time. It reads
// etcd's alarms (NOSPACE: the store is over its space quota and refuses every
// write until space is freed and the alarm disarmed) into a metric and the
// log, defragments on a schedule so the space compaction frees goes back to
// the disk, and, for the platform's own embedded member, recovers from
// NOSPACE by itself: compact to the current revision, defragment, disarm once
// the store is back under its quota. On an external cluster it only reports:
// that cluster's operators own its history and its alarms.
package etcdmaint

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

var alarmGauge = promauto.NewGaugeVec(prometheus.GaugeOpts{
	Name: "discovery_etcd_alarm",
	Help: "1 while etcd has this alarm raised (NOSPACE: the store is full and refuses writes; CORRUPT: a member's data diverged), else 0.",
}, []string{"alarm"})

// NoSpace is the name of etcd's alarm for a store over its space quota.
var NoSpace = pb.AlarmType_NOSPACE.String()

// defaultQuota is etcd's own default, for a member that does not report its quota.
const defaultQuota = 2 << 30

// Cleared is an alarm that was raised and no longer is.
type Cleared struct {
	Alarm        string
	Since, Until time.Time // first seen raised by this instance, seen cleared
	// Recovered: this instance freed the space and disarmed the alarm.
	Recovered bool
}

// Config tunes a Maintainer; zero values take defaults.
type Config struct {
	// Interval is how often the alarms are read (default 2 s).
	Interval time.Duration
	// Defrag is how often every member is defragmented (0: never). A member
	// with less than a tenth of its file free is skipped: defragmenting
	// blocks it, and there would be nothing to win.
	Defrag time.Duration
	// ScheduleKey, when set, keeps the time of the last scheduled
	// defragmentation in etcd, so the schedule survives restarts (a platform
	// restarted more often than Defrag would otherwise never defragment)
	// and carries over to a new leader. Empty: it counts from New.
	ScheduleKey string
	// Recover lets the maintainer free space itself on NOSPACE. Only for the
	// embedded member: compacting to the current revision drops the history
	// an external cluster's other clients may rely on.
	Recover bool
	// Act tells whether this instance may defragment and recover now (nil:
	// always); several instances on one external cluster let their leader do it.
	Act func() bool
	// OnCleared records an alarm that cleared (an event); an error retries it
	// at the next check.
	OnCleared func(context.Context, Cleared) error
	Logger    *slog.Logger
}

// Maintainer reads alarms, defragments and recovers; Run drives it.
type Maintainer struct {
	cli *clientv3.Client
	cfg Config

	mu      sync.Mutex
	raised  map[string]time.Time // alarm -> first seen raised; guarded by mu
	pending []Cleared            // cleared, not yet recorded
	// recovery attempts: again when the store changed (something was
	// deleted: nothing else can write a full store) or a minute passed.
	triedRev  int64
	triedAt   time.Time
	recovered bool // the last disarm was ours
	lastDefr  time.Time
	loaded    bool // lastDefr was read from ScheduleKey
}

// New returns a maintainer over a client.
func New(cli *clientv3.Client, cfg Config) *Maintainer {
	if cfg.Interval <= 0 {
		cfg.Interval = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	for _, a := range []pb.AlarmType{pb.AlarmType_NOSPACE, pb.AlarmType_CORRUPT} {
		alarmGauge.WithLabelValues(a.String()).Set(0)
	}
	return &Maintainer{cli: cli, cfg: cfg, raised: map[string]time.Time{}, lastDefr: time.Now()}
}

// Raised reports whether etcd has the alarm raised, and since when.
func (m *Maintainer) Raised(alarm string) (bool, time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.raised[alarm]
	return ok, t
}

// Run checks every Interval until ctx ends.
func (m *Maintainer) Run(ctx context.Context) {
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	for {
		m.Check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (m *Maintainer) mayAct() bool { return m.cfg.Act == nil || m.cfg.Act() }

// Check reads the alarms once, records cleared ones, recovers from NOSPACE
// when allowed and defragments when due.
func (m *Maintainer) Check(ctx context.Context) {
	actx, cancel := context.WithTimeout(ctx, m.cfg.Interval+time.Second)
	resp, err := m.cli.AlarmList(actx)
	cancel()
	if err != nil {
		return // unreachable: etcdhealth reports that
	}
	active := map[string]bool{}
	for _, a := range resp.Alarms {
		active[a.Alarm.String()] = true
	}
	m.update(active)
	m.flush(ctx)
	if active[NoSpace] && m.cfg.Recover && m.mayAct() && m.due(resp.Header.Revision) {
		if ok := m.recover(ctx, resp.Alarms); ok {
			m.Check(ctx) // record the clearing now, not a tick later
			return
		}
	}
	if m.cfg.Defrag > 0 {
		m.scheduledDefrag(ctx)
	}
}

// scheduledDefrag defragments when Defrag has passed since the last time,
// which ScheduleKey keeps across restarts and instances.
func (m *Maintainer) scheduledDefrag(ctx context.Context) {
	if m.cfg.ScheduleKey != "" && !m.loaded {
		last, ok, err := m.storedDefrag(ctx)
		if err != nil {
			return // etcd unreachable: try at the next check
		}
		m.loaded = true
		if ok {
			m.lastDefr = last
		} else {
			m.storeDefrag(ctx, m.lastDefr) // the schedule starts now
		}
	}
	if time.Since(m.lastDefr) < m.cfg.Defrag || !m.mayAct() {
		return
	}
	if m.cfg.ScheduleKey != "" {
		// Another instance (a former leader) may have done it since.
		last, ok, err := m.storedDefrag(ctx)
		if err != nil {
			return
		}
		if ok && time.Since(last) < m.cfg.Defrag {
			m.lastDefr = last
			return
		}
	}
	m.lastDefr = time.Now()
	m.storeDefrag(ctx, m.lastDefr)
	if err := m.Defragment(ctx, false); err != nil && ctx.Err() == nil {
		m.cfg.Logger.Warn("scheduled etcd defragmentation failed; next try in one interval", "err", err, "interval", m.cfg.Defrag)
	}
}

// storedDefrag reads the last scheduled defragmentation's time (ok false:
// none recorded, or unreadable, which starts the schedule afresh).
func (m *Maintainer) storedDefrag(ctx context.Context) (time.Time, bool, error) {
	gctx, cancel := context.WithTimeout(ctx, m.cfg.Interval+time.Second)
	defer cancel()
	resp, err := m.cli.Get(gctx, m.cfg.ScheduleKey)
	if err != nil {
		return time.Time{}, false, err
	}
	if len(resp.Kvs) == 0 {
		return time.Time{}, false, nil
	}
	t, err := time.Parse(time.RFC3339Nano, string(resp.Kvs[0].Value))
	if err != nil {
		m.cfg.Logger.Warn("unreadable last-defragmentation time in etcd; the schedule starts afresh", "key", m.cfg.ScheduleKey, "err", err)
		return time.Time{}, false, nil
	}
	return t, true, nil
}

// storeDefrag records t as the last scheduled defragmentation; a failure
// (a full store refuses writes) only means a restart may defragment sooner.
func (m *Maintainer) storeDefrag(ctx context.Context, t time.Time) {
	if m.cfg.ScheduleKey == "" {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, m.cfg.Interval+time.Second)
	defer cancel()
	if _, err := m.cli.Put(pctx, m.cfg.ScheduleKey, t.UTC().Format(time.RFC3339Nano)); err != nil && ctx.Err() == nil {
		m.cfg.Logger.Warn("could not record the defragmentation time in etcd", "key", m.cfg.ScheduleKey, "err", err)
	}
}

func (m *Maintainer) update(active map[string]bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	for a := range active {
		if _, ok := m.raised[a]; ok {
			continue
		}
		m.raised[a] = now
		alarmGauge.WithLabelValues(a).Set(1)
		if a == NoSpace {
			m.cfg.Logger.Error("etcd raised NOSPACE: the store is over its space quota and refuses every write; open sessions keep flowing",
				"alarm", a, "recovers_itself", m.cfg.Recover)
		} else {
			m.cfg.Logger.Error("etcd raised an alarm", "alarm", a)
		}
	}
	for a, since := range m.raised {
		if active[a] {
			continue
		}
		delete(m.raised, a)
		alarmGauge.WithLabelValues(a).Set(0)
		c := Cleared{Alarm: a, Since: since, Until: now, Recovered: a == NoSpace && m.recovered}
		m.recovered = false
		m.cfg.Logger.Info("etcd alarm cleared", "alarm", a, "raised_for", now.Sub(since).Round(time.Millisecond))
		m.pending = append(m.pending, c)
	}
}

// flush records cleared alarms, keeping those that fail for the next check.
func (m *Maintainer) flush(ctx context.Context) {
	m.mu.Lock()
	pending := m.pending
	m.pending = nil
	m.mu.Unlock()
	if m.cfg.OnCleared == nil {
		return
	}
	var keep []Cleared
	for _, c := range pending {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := m.cfg.OnCleared(rctx, c)
		cancel()
		if err != nil && ctx.Err() == nil && time.Since(c.Until) < 10*time.Minute {
			m.cfg.Logger.Warn("recording a cleared etcd alarm failed; retrying", "alarm", c.Alarm, "err", err)
			keep = append(keep, c)
		}
	}
	m.mu.Lock()
	m.pending = append(keep, m.pending...)
	m.mu.Unlock()
}

func (m *Maintainer) due(rev int64) bool {
	if rev != m.triedRev || time.Since(m.triedAt) >= time.Minute {
		m.triedRev, m.triedAt = rev, time.Now()
		return true
	}
	return false
}

// recover compacts to the current revision, defragments, and disarms NOSPACE
// once every member is under 80% of its quota: nearer the quota the next
// writes would raise the alarm again at once. It reports whether it disarmed.
func (m *Maintainer) recover(ctx context.Context, alarms []*pb.AlarmMember) bool {
	log := m.cfg.Logger
	rctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	resp, err := m.cli.Get(rctx, "\x00", clientv3.WithSerializable(), clientv3.WithCountOnly())
	if err != nil {
		log.Warn("NOSPACE recovery: reading the revision failed", "err", err)
		return false
	}
	rev := resp.Header.Revision
	if _, err := m.cli.Compact(rctx, rev, clientv3.WithCompactPhysical()); err != nil && !errors.Is(err, rpctypes.ErrCompacted) {
		log.Warn("NOSPACE recovery: compaction failed", "revision", rev, "err", err)
		return false
	}
	if err := m.Defragment(rctx, true); err != nil {
		log.Warn("NOSPACE recovery: defragmentation failed", "err", err)
		return false
	}
	eps, err := m.members(rctx)
	if err != nil {
		log.Warn("NOSPACE recovery: listing members failed", "err", err)
		return false
	}
	for _, ep := range eps {
		st, err := m.cli.Status(rctx, ep)
		if err != nil {
			log.Warn("NOSPACE recovery: member status failed", "endpoint", ep, "err", err)
			return false
		}
		quota := st.DbSizeQuota
		if quota <= 0 {
			quota = defaultQuota
		}
		if st.DbSize >= quota/10*8 {
			log.Error("NOSPACE recovery: the store is still full after compaction and defragmentation: its live data needs the space; delete apps or events, or raise --etcd-quota-bytes and restart",
				"endpoint", ep, "db_bytes", st.DbSize, "quota_bytes", quota)
			return false
		}
	}
	for _, a := range alarms {
		if a.Alarm != pb.AlarmType_NOSPACE {
			continue
		}
		if _, err := m.cli.AlarmDisarm(rctx, &clientv3.AlarmMember{MemberID: a.MemberID, Alarm: a.Alarm}); err != nil {
			log.Warn("NOSPACE recovery: disarming the alarm failed", "member", fmt.Sprintf("%x", a.MemberID), "err", err)
			return false
		}
	}
	m.mu.Lock()
	m.recovered = true
	m.mu.Unlock()
	log.Info("NOSPACE recovered: compacted to the current revision, defragmented, alarm disarmed; writes are accepted again", "revision", rev)
	return true
}

// Defragment defragments every member, one at a time (a member being
// defragmented blocks its clients). Unless all is set, a member with less
// than a tenth of its file free is skipped.
func (m *Maintainer) Defragment(ctx context.Context, all bool) error {
	eps, err := m.members(ctx)
	if err != nil {
		return err
	}
	for _, ep := range eps {
		dctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		before, err := m.cli.Status(dctx, ep)
		if err != nil {
			cancel()
			return fmt.Errorf("status of %s: %w", ep, err)
		}
		if !all && before.DbSize-before.DbSizeInUse < before.DbSize/10 {
			cancel()
			continue
		}
		t0 := time.Now()
		_, err = m.cli.Defragment(dctx, ep)
		if err != nil {
			cancel()
			return fmt.Errorf("defragment %s: %w", ep, err)
		}
		after, err := m.cli.Status(dctx, ep)
		cancel()
		if err != nil {
			return fmt.Errorf("status of %s: %w", ep, err)
		}
		m.cfg.Logger.Info("etcd defragmented", "endpoint", ep, "db_bytes_before", before.DbSize,
			"db_bytes_after", after.DbSize, "took", time.Since(t0).Round(time.Millisecond))
	}
	return nil
}

// members are the client URLs of every member, one per member.
func (m *Maintainer) members(ctx context.Context) ([]string, error) {
	resp, err := m.cli.MemberList(ctx)
	if err != nil {
		return nil, fmt.Errorf("list etcd members: %w", err)
	}
	var eps []string
	for _, mem := range resp.Members {
		if len(mem.ClientURLs) > 0 {
			eps = append(eps, mem.ClientURLs[0])
		}
	}
	if len(eps) == 0 {
		return nil, errors.New("etcd lists no member with a client URL")
	}
	return eps, nil
}
