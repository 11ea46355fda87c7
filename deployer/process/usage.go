package process

import (
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/discovery-platform/discovery/apps"
)

// clockTicks is the kernel's USER_HZ, the unit of /proc/<pid>/stat's times
// (100 on every Linux platform Go supports).
const clockTicks = 100

// UsageReader measures replicas' CPU and memory from /proc, without a
// Runtime (like LogReader): the processes of a replica's process group,
// which its supervisor leads. CPU is the share of one core used since this
// reader last measured the replica (since its start, the first time).
// A process that left the group (setsid) is not counted.
type UsageReader struct {
	StateDir string

	mu   sync.Mutex
	last map[apps.ReplicaID]cpuMark
}

type cpuMark struct {
	ticks uint64
	at    time.Time
}

// Usage measures the replicas of ids that run on this machine; the others
// are left out of the answer.
func (u *UsageReader) Usage(ids []apps.ReplicaID) map[apps.ReplicaID]apps.ReplicaUsage {
	groups, started := u.groups(ids)
	if len(groups) == 0 {
		return nil
	}
	sums := sumGroups(groups)
	now := time.Now()
	page := int64(os.Getpagesize())
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.last == nil {
		u.last = map[apps.ReplicaID]cpuMark{}
	}
	out := make(map[apps.ReplicaID]apps.ReplicaUsage, len(sums))
	for id, s := range sums {
		prev, ok := u.last[id]
		if !ok || s.ticks < prev.ticks {
			prev = cpuMark{at: started[id]}
		}
		var cpu float64
		if dt := now.Sub(prev.at).Seconds(); dt > 0 {
			cpu = float64(s.ticks-prev.ticks) / clockTicks / dt * 100
		}
		out[id] = apps.ReplicaUsage{CPUPercent: cpu, RSSBytes: s.pages * page}
		u.last[id] = cpuMark{ticks: s.ticks, at: now}
	}
	for id, m := range u.last {
		if now.Sub(m.at) > 10*time.Minute {
			delete(u.last, id)
		}
	}
	return out
}

// groups finds the process group (its supervisor's pid) of each replica of
// ids still running here, and when it started.
func (u *UsageReader) groups(ids []apps.ReplicaID) (map[int]apps.ReplicaID, map[apps.ReplicaID]time.Time) {
	groups := map[int]apps.ReplicaID{}
	started := map[apps.ReplicaID]time.Time{}
	for _, id := range ids {
		if checkID(id) != nil {
			continue
		}
		m, err := readMeta(filepath.Join(u.StateDir, dirName(id)))
		if err != nil || m.PID == 0 || m.ExitedAt != nil {
			continue
		}
		if st, err := readStat(m.PID); err != nil || st.startTicks != m.StartTicks {
			continue // gone, or its pid reused
		}
		groups[m.PID], started[id] = id, m.StartedAt
	}
	return groups, started
}

// groupSum is what a process group's processes use together.
type groupSum struct {
	ticks uint64
	pages int64
}

// sumGroups walks /proc once, adding up each group's CPU ticks and pages.
func sumGroups(groups map[int]apps.ReplicaID) map[apps.ReplicaID]*groupSum {
	sums := map[apps.ReplicaID]*groupSum{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readStat(pid)
		if err != nil {
			continue
		}
		id, ok := groups[st.pgrp]
		if !ok {
			continue
		}
		if sums[id] == nil {
			sums[id] = &groupSum{}
		}
		sums[id].ticks += st.cpuTicks
		sums[id].pages += st.rssPages
	}
	return sums
}
