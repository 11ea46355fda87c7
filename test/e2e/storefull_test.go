package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// embeddedEtcd connects to the platform's embedded etcd: its client URL is
// kept beside its data.
func (f *Framework) embeddedEtcd() *clientv3.Client {
	f.t.Helper()
	b, err := os.ReadFile(filepath.Join(f.DataDir, "etcd.urls"))
	require.NoError(f.t, err)
	var urls struct{ Client string }
	require.NoError(f.t, json.Unmarshal(b, &urls))
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{urls.Client}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	require.NoError(f.t, err)
	f.t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// metric reads one sample from /metrics ("" when absent).
func (f *Framework) metric(series string) string {
	req, err := newRequest("GET", f.APIURL()+"/metrics", "", f.Token) // an admin's: the series name every tenant
	if err != nil {
		return ""
	}
	resp, err := f.HTTP().Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

// events lists an app's events of one type.
func (f *Framework) events(app, typ string) []string {
	var out struct {
		Events []struct{ Type, Message string }
	}
	if f.Call("GET", "/apps/"+app+"/events", nil, &out) != 200 {
		return nil
	}
	var msgs []string
	for _, e := range out.Events {
		if e.Type == typ {
			msgs = append(msgs, e.Message)
		}
	}
	return msgs
}

// TestAFullStoreRefusesWritesAndRecoversByItself: the embedded etcd, given a
// small quota, fills up and raises NOSPACE: management writes answer 503
// store_full with Retry-After and change nothing, the alarm metric reads 1,
// the open session keeps flowing. Once the data that filled it is deleted the
// platform compacts, defragments and disarms by itself, writes succeed again
// and the app's activity log tells what happened.
func TestAFullStoreRefusesWritesAndRecoversByItself(t *testing.T) {
	const alarm = `discovery_etcd_alarm{alarm="NOSPACE"}`
	f := New(t)
	f.Args = []string{"--etcd-quota-bytes", strconv.Itoa(16 << 20)}
	f.Start()
	require.Equal(t, 201, f.Call("POST", "/apps", map[string]any{"name": "full", "replicas": 1, "health_path": "/healthz"}, nil))
	rev := f.Deploy("full", nil)
	f.WaitState("full", rev, "active", 60*time.Second)
	s, err := open(t, f, "full")
	require.NoError(t, err)
	assert.Equal(t, "0", f.metric(alarm))

	cli := f.embeddedEtcd()
	val := strings.Repeat("x", 64<<10)
	for i := 0; ; i++ {
		require.Less(t, i, 2000, "etcd never ran out of space")
		_, err := cli.Put(context.Background(), fmt.Sprintf("/junk/%05d", i), val)
		if errors.Is(err, rpctypes.ErrNoSpace) {
			break
		}
		require.NoError(t, err)
	}

	// While the platform tries to recover (a defragmentation blocks etcd
	// for a moment, which answers 503 unavailable), every write is refused.
	f.Eventually("a write answers 503 store_full", 30*time.Second, func() bool {
		req, _ := newRequest("POST", f.APIURL()+"/api/v1/tenants/default/apps", `{"name":"late"}`, f.Token)
		resp, err := f.HTTP().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		require.Equal(t, 503, resp.StatusCode, string(b))
		require.NotEmpty(t, resp.Header.Get("Retry-After"))
		return strings.Contains(string(b), `"code":"store_full"`)
	})
	assert.Equal(t, 404, f.Call("GET", "/apps/late", nil, nil), "the refused write changed nothing")
	f.Eventually("the alarm metric reads 1", 15*time.Second, func() bool { return f.metric(alarm) == "1" })
	select {
	case err := <-s.done:
		t.Fatalf("the open session was cut while the store was full: %v", err)
	default:
	}

	// A full store still takes deletes; then the platform recovers by itself.
	_, err = cli.Delete(context.Background(), "/junk/", clientv3.WithPrefix())
	require.NoError(t, err)
	f.Eventually("writes work again", 60*time.Second, func() bool {
		return f.Call("POST", "/apps", map[string]any{"name": "late"}, nil) == 201
	})
	assert.Equal(t, "0", f.metric(alarm))
	f.Eventually("the activity log tells the story", 30*time.Second, func() bool { return len(f.events("full", "store_full")) > 0 })
	msgs := f.events("full", "store_full")
	require.Len(t, msgs, 1)
	assert.Contains(t, msgs[0], "NOSPACE")
	assert.Contains(t, msgs[0], "disarmed the alarm")
	require.NoError(t, s.close(), "the session lived through it")
}
