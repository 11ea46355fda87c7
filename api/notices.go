package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/discovery-platform/discovery/apps"
)

// NoticeSource tells a revision's notice from memory and signals changes
// (endpoint.Routes).
type NoticeSource interface {
	Notice(tenant, app, rev string) (apps.Notice, bool)
	Changed() <-chan struct{}
}

// Notice stream tuning.
const (
	noticeHeartbeat = 15 * time.Second
	// noticeStreamLife bounds one stream: the caller reconnects and is
	// authenticated again (a revoked token or role stops being served).
	noticeStreamLife = 10 * time.Minute
	// noticeStreamsPerRevision bounds the open streams of one revision's
	// capability (each replica may follow its own) or of one subject.
	noticeStreamsPerRevision = 256
)

// noticeStream returns the handler of GET .../revisions/{rev}/notices: the
// revision's notice now, then each change, as Server-Sent Events (a
// comment every 15 s). It ends after noticeStreamLife, when the revision is
// gone or over (retired, failed: after telling so), or when the client
// goes away.
func (s *Server) noticeStream() fiber.Handler {
	slots := &streamSlots{open: map[string]int{}, max: noticeStreamsPerRevision}
	return func(c *fiber.Ctx) error {
		if s.cfg.Notices == nil {
			return fiber.NewError(fiber.StatusNotImplemented, "this platform instance serves no notices")
		}
		t, a, rev := strings.Clone(c.Params("tenant")), strings.Clone(c.Params("app")), strings.Clone(c.Params("rev"))
		if _, ok := s.cfg.Notices.Notice(t, a, rev); !ok {
			return fmt.Errorf("revision %s of %s/%s: %w", rev, t, a, apps.ErrNotFound)
		}
		key := "subject " + principal(c).Subject
		if p := principal(c); p.Revision != nil {
			key = "revision " + t + "/" + a + "/" + rev
		}
		if !slots.take(key) {
			return fiber.NewError(fiber.StatusTooManyRequests, fmt.Sprintf("%s has %d notice streams open already", key, noticeStreamsPerRevision))
		}
		c.Set(fiber.HeaderContentType, "text/event-stream; charset=utf-8")
		c.Set(fiber.HeaderCacheControl, "no-cache")
		c.Set("X-Accel-Buffering", "no")
		shutdown := c.Context().Done()
		src := s.cfg.Notices
		c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
			defer slots.give(key)
			ctx, cancel := context.WithTimeout(context.Background(), noticeStreamLife)
			defer cancel()
			go func() {
				select {
				case <-shutdown:
					cancel()
				case <-ctx.Done():
				}
			}()
			followNotices(ctx, w, src, t, a, rev)
		})
		return nil
	}
}

// followNotices writes the revision's notice, then each change of it.
func followNotices(ctx context.Context, w *bufio.Writer, src NoticeSource, t, a, rev string) {
	beat := time.NewTicker(noticeHeartbeat)
	defer beat.Stop()
	var last apps.Notice
	sent := false
	for {
		changed := src.Changed()
		n, ok := src.Notice(t, a, rev)
		if !ok {
			return // the revision is gone
		}
		if !sent || n.State != last.State || n.ActiveRevision != last.ActiveRevision || n.Reason != last.Reason {
			b, err := json.Marshal(n)
			if err != nil {
				return
			}
			if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil || w.Flush() != nil {
				return
			}
			last, sent = n, true
		}
		if n.State.Terminal() {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-beat.C:
			if _, err := w.WriteString(": keep-alive\n\n"); err != nil || w.Flush() != nil {
				return
			}
		}
	}
}
