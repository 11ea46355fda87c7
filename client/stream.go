package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// ErrAppDeleted ends StreamEvents when the platform says the app is gone.
var ErrAppDeleted = errors.New("the app was deleted")

// StreamEvents reads an app's activity log live from its Server-Sent Events
// stream (GET .../events/stream): fn gets the events after the event id
// q.After ("" for the q.Limit recent ones the platform sends first, 100 when
// 0), then each new one as the platform writes it; q.Actor and q.Type select
// some. It returns ctx's error when ctx ends, fn's error
// when fn returns one, ErrAppDeleted when the app is deleted, and
// io.ErrUnexpectedEOF when the platform ends the stream (a restart, a token
// revoked): call it again with the last id seen as q.After to go on.
func (c *Client) StreamEvents(ctx context.Context, tenant, app string, q EventQuery, fn func(Event) error) error {
	u := *c.base
	path := apiPath("tenants", tenant, "apps", app, "events", "stream")
	u.RawPath = c.base.EscapedPath() + path
	unescaped, err := url.PathUnescape(u.RawPath)
	if err != nil {
		return fmt.Errorf("client: GET %s: %w", path, err)
	}
	u.Path = unescaped
	v := url.Values{}
	for k, s := range map[string]string{"after": q.After, "actor": q.Actor, "type": q.Type} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	u.RawQuery = v.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("client: GET %s: %w", path, err)
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("User-Agent", c.userAgent)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	// No timeout: the stream lasts as long as ctx (the client's Timeout
	// bounds one call, and this is not one).
	resp, err := c.hc.Do(req)
	if err != nil {
		return c.transportError(ctx, http.MethodGet, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return decodeError(resp, data)
	}
	err = readEvents(resp.Body, fn)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// readEvents reads Server-Sent Events (https://html.spec.whatwg.org/multipage/server-sent-events.html):
// comment lines are heartbeats, a blank line ends a message.
func readEvents(r io.Reader, fn func(Event) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var kind string
	var data strings.Builder
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if kind == "deleted" {
				return ErrAppDeleted
			}
			if data.Len() > 0 && (kind == "" || kind == "message") {
				var e Event
				if err := json.Unmarshal([]byte(data.String()), &e); err != nil {
					return fmt.Errorf("client: event stream: %w", err)
				}
				if err := fn(e); err != nil {
					return err
				}
			}
			kind = ""
			data.Reset()
		case strings.HasPrefix(line, ":"):
		default:
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "event":
				kind = value
			case "data":
				if data.Len() > 0 {
					data.WriteByte('\n')
				}
				data.WriteString(value)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return io.ErrUnexpectedEOF
}
