package deployer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/discovery-platform/discovery/apps"
)

// noticeRetries are the delays before each attempt to deliver a drain
// notice to one replica: four attempts over about three seconds.
var noticeRetries = []time.Duration{0, 250 * time.Millisecond, 750 * time.Millisecond, 2 * time.Second}

// notifier tells a revision's replicas, at their app's drain_hook, that the
// revision started draining or was re-activated (sdk/PROTOCOL.md §3a), and
// logs how many were told.
type notifier struct {
	snapshot func(apps.Ref) (apps.Snapshot, bool)
	events   interface {
		AppendEvent(ctx context.Context, e apps.Event) error
	}
	client *http.Client
	log    *slog.Logger
	now    func() time.Time
	// sem bounds the hooks in flight over all revisions.
	sem chan struct{}
	wg  sync.WaitGroup
}

// notify delivers rev's notice in the background; wait waits for every
// delivery started.
func (n *notifier) notify(ctx context.Context, rev apps.Revision) {
	n.wg.Go(func() { n.deliver(ctx, rev) })
}

func (n *notifier) wait() { n.wg.Wait() }

func (n *notifier) deliver(ctx context.Context, rev apps.Revision) {
	snap, ok := n.snapshot(apps.Ref{Tenant: rev.Tenant, App: rev.App})
	if !ok || snap.App.DrainHook == "" {
		return
	}
	active := ""
	for _, r := range snap.Revisions {
		if r.State == apps.Active {
			active = r.ID
		}
	}
	notice := apps.NoticeFor(snap.App, rev, active, n.now())
	body, err := json.Marshal(notice)
	if err != nil {
		return
	}
	var targets []apps.Replica
	for _, r := range snap.Replicas {
		if r.Revision == rev.ID && r.Address != "" && r.State != apps.ReplicaExited && r.State != apps.ReplicaStopping {
			targets = append(targets, r)
		}
	}
	var told sync.WaitGroup
	var mu sync.Mutex
	ok200 := 0
	var failures []string
	for _, r := range targets {
		told.Go(func() {
			err := n.post(ctx, "http://"+r.Address+snap.App.DrainHook, body)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				ok200++
			} else {
				failures = append(failures, r.ID+": "+err.Error())
			}
		})
	}
	told.Wait()
	if ctx.Err() != nil {
		return
	}
	msg := fmt.Sprintf("drain notice (%s, new players go to %s): told %d of %d replicas at %s", notice.State, orNone(active), ok200, len(targets), snap.App.DrainHook)
	if len(failures) > 0 {
		msg += "; not told: " + truncateList(failures, 3)
	}
	ectx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := n.events.AppendEvent(ectx, apps.Event{Time: n.now(), Type: apps.EventNotice, Tenant: rev.Tenant, App: rev.App,
		Revision: rev.ID, Message: msg, Notice: &apps.NoticeCount{State: notice.State, ActiveRevision: active, Told: ok200,
			Replicas: len(targets), Hook: snap.App.DrainHook}}); err != nil {
		n.log.Warn("drain notice: event not written", "tenant", rev.Tenant, "app", rev.App, "revision", rev.ID, "err", err)
	}
}

// post delivers one notice to one replica, retrying a failed or slow hook.
func (n *notifier) post(ctx context.Context, url string, body []byte) error {
	var err error
	for _, d := range noticeRetries {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
		select {
		case n.sem <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		err = n.postOnce(ctx, url, body)
		<-n.sem
		if err == nil {
			return nil
		}
	}
	return err
}

func (n *notifier) postOnce(ctx context.Context, url string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := n.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("answered %s", resp.Status)
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// truncateList joins the first n items and says how many more there are.
func truncateList(items []string, n int) string {
	if len(items) <= n {
		return fmt.Sprint(items)
	}
	return fmt.Sprintf("%v and %d more", items[:n], len(items)-n)
}
