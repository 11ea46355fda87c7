package e2e

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// soakResult is what one soak run observed.
type soakResult struct {
	Clients, Rollouts               int
	Dropped, Lost, Messages         int64
	EndpointCalls, EndpointFailures int64
	RetiredNotEmpty                 []string
	Duration                        time.Duration
}

func (r soakResult) String() string {
	return fmt.Sprintf("clients=%d rollouts=%d messages=%d dropped=%d lost=%d get-endpoint=%d failed=%d retired-while-busy=%d in %s",
		r.Clients, r.Rollouts, r.Messages, r.Dropped, r.Lost, r.EndpointCalls, r.EndpointFailures, len(r.RetiredNotEmpty), r.Duration.Round(time.Millisecond))
}

// soak holds n WebSocket sessions that exchange numbered messages while
// rollouts happen back to back. With rolling=true each rollout also stops the
// previous revision as soon as the new one is active: the "rolling restart"
// every ordinary deployment does, for comparison.
func soak(t *testing.T, f *Framework, app string, n, rollouts int, rolling bool) soakResult {
	start := time.Now()
	res := soakResult{Clients: n, Rollouts: rollouts}
	require.Equal(t, 201, f.Call("POST", "/apps", map[string]any{"name": app, "replicas": 2, "health_path": "/healthz",
		"reconnect_grace": "1s", "shutdown_grace": "2s"}, nil))
	revs := []string{f.Deploy(app, map[string]string{"VERSION": "0"})}
	f.WaitState(app, revs[0], "active", 60*time.Second)

	var dropped, lost, messages, epCalls, epFail atomic.Int64
	getEndpoint := func() (Endpoint, bool) {
		epCalls.Add(1)
		ep, code := f.GetEndpoint(app)
		if code != 200 {
			epFail.Add(1)
			t.Logf("get-endpoint answered %d", code)
			return ep, false
		}
		return ep, true
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	connected := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ep, ok := getEndpoint()
			if !ok {
				connected <- fmt.Errorf("client %d: no endpoint", i)
				return
			}
			c, _, err := websocket.DefaultDialer.Dial(ep.Endpoint+"ws", nil)
			connected <- err
			if err != nil {
				return
			}
			defer c.Close()
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
					return
				case <-tick.C:
				}
				want := fmt.Sprintf("%d:%d", i, seq)
				_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
				_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
				if err := c.WriteMessage(websocket.TextMessage, []byte(want)); err != nil {
					dropped.Add(1)
					return
				}
				_, got, err := c.ReadMessage()
				if err != nil {
					dropped.Add(1)
					return
				}
				messages.Add(1)
				if string(got) != want {
					lost.Add(1)
				}
			}
		}(i)
	}
	for i := 0; i < n; i++ {
		require.NoError(t, <-connected)
	}

	// New players keep arriving during the rollouts: each gets an endpoint,
	// connects, exchanges one message and leaves.
	probeDone := make(chan struct{})
	go func() {
		defer close(probeDone)
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			ep, ok := getEndpoint()
			if !ok {
				continue
			}
			c, _, err := websocket.DefaultDialer.Dial(ep.Endpoint+"ws", nil)
			if err != nil {
				epFail.Add(1)
				continue
			}
			_ = c.WriteMessage(websocket.TextMessage, []byte("probe"))
			if _, got, err := c.ReadMessage(); err != nil || string(got) != "probe" {
				lost.Add(1)
			}
			_ = c.Close()
		}
	}()

	for i := 1; i <= rollouts; i++ {
		rev := f.Deploy(app, map[string]string{"VERSION": strconv.Itoa(i)})
		f.WaitState(app, rev, "active", 60*time.Second)
		if rolling {
			require.Equal(t, 202, f.Call("POST", "/apps/"+app+"/revisions/"+revs[len(revs)-1]+"/retire", nil, nil))
		}
		revs = append(revs, rev)
	}
	// The sessions go on after the last rollout (two more rounds each), then leave.
	after := messages.Load() + int64(2*n)
	f.Eventually("two more rounds of messages", 30*time.Second, func() bool { return messages.Load() >= after || dropped.Load() > 0 })
	close(stop)
	wg.Wait()
	<-probeDone

	// Every revision but the last drains and is retired once empty.
	for _, rev := range revs[:len(revs)-1] {
		got := f.WaitState(app, rev, "retired", 60*time.Second)
		if !strings.HasPrefix(got.Reason, "empty for reconnect_grace") && !strings.Contains(got.Reason, "operator") {
			res.RetiredNotEmpty = append(res.RetiredNotEmpty, rev+": "+got.Reason)
		}
	}
	res.Dropped, res.Lost, res.Messages = dropped.Load(), lost.Load(), messages.Load()
	res.EndpointCalls, res.EndpointFailures = epCalls.Load(), epFail.Load()
	res.Duration = time.Since(start)
	return res
}

func soakClients() int {
	if v, err := strconv.Atoi(os.Getenv("SOAK_CLIENTS")); err == nil && v > 0 {
		return v
	}
	return 200
}

// TestSoakRolloutsDropNoSession is the promise under load: sessions held
// through ten rollouts in a row, against a rolling-restart baseline.
func TestSoakRolloutsDropNoSession(t *testing.T) {
	if testing.Short() {
		t.Skip("soak: skipped with -short")
	}
	f := New(t)
	f.Start()
	n := soakClients()

	discovery := soak(t, f, "soak", n, 10, false)
	t.Logf("discovery rollouts:      %s", discovery)
	assert.Zero(t, discovery.Dropped, "sessions dropped")
	assert.Zero(t, discovery.Lost, "messages lost")
	assert.Zero(t, discovery.EndpointFailures, "failed get-endpoint calls")
	assert.Empty(t, discovery.RetiredNotEmpty, "revisions retired with sessions")
	assert.Greater(t, discovery.Messages, int64(n), "the sessions did exchange messages")

	baseline := soak(t, f, "baseline", n, 10, true)
	t.Logf("rolling-restart baseline: %s", baseline)
	assert.Greater(t, baseline.Dropped, int64(0), "the baseline drops the sessions of every stopped revision")
	fmt.Printf("SOAK discovery: dropped %d of %d sessions; rolling restart: dropped %d of %d\n", discovery.Dropped, n, baseline.Dropped, n)
}
