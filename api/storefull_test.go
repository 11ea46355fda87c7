package api_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/discovery-platform/discovery/api"
	"github.com/discovery-platform/discovery/apps"
	"github.com/discovery-platform/discovery/internal/testkit/etcdtest"
	"github.com/discovery-platform/discovery/tenants"
)

// TestAFullStoreAnswers503StoreFull: with etcd's NOSPACE alarm raised, a
// write answers 503 store_full with Retry-After and changes nothing; reads
// still work; after compaction, defragmentation and disarming it succeeds.
func TestAFullStoreAnswers503StoreFull(t *testing.T) {
	e := etcdtest.StartWith(t, etcdtest.Options{QuotaBackendBytes: 8 << 20})
	ctx := context.Background()
	ts := tenants.NewStore(e.Client, "/t", "discovery-")
	require.NoError(t, ts.Ensure(ctx, tenants.Default))
	srv := api.New(api.Config{Apps: &apps.Service{Store: apps.NewStore(e.Client, "/t"), Tenants: ts}, Tenants: ts})
	h := &harness{t: t, srv: srv, cli: e.Client}
	code, body := h.do("POST", base, `{"name":"before"}`, nil)
	require.Equal(t, 201, code, body)

	val := strings.Repeat("x", 64<<10)
	for i := 0; ; i++ {
		require.Less(t, i, 1000, "etcd never ran out of space")
		_, err := e.Client.Put(ctx, fmt.Sprintf("/junk/%04d", i), val)
		if errors.Is(err, rpctypes.ErrNoSpace) {
			break
		}
		require.NoError(t, err)
	}
	keys := h.keys()

	req := httptest.NewRequest("POST", base, strings.NewReader(`{"name":"during"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := srv.App().Test(req, 10_000)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 503, resp.StatusCode)
	assert.NotEmpty(t, resp.Header.Get("Retry-After"))
	code, body = h.do("PATCH", base+"/before", `{"replicas":2}`, nil)
	assert.Equal(t, 503, code)
	assert.Contains(t, body, `"code":"store_full"`)
	assert.Contains(t, body, "nothing was changed")
	assert.Equal(t, keys, h.keys(), "a refused write changed nothing")
	code, _ = h.do("GET", base+"/before", "", nil)
	assert.Equal(t, 200, code, "reads still work")

	// An operator's recovery: free the space, compact, defragment, disarm.
	_, err = e.Client.Delete(ctx, "/junk/", clientv3.WithPrefix())
	require.NoError(t, err)
	cur, err := e.Client.Get(ctx, "/t", clientv3.WithCountOnly())
	require.NoError(t, err)
	_, err = e.Client.Compact(ctx, cur.Header.Revision, clientv3.WithCompactPhysical())
	require.NoError(t, err)
	_, err = e.Client.Defragment(ctx, e.Endpoint)
	require.NoError(t, err)
	_, err = e.Client.AlarmDisarm(ctx, &clientv3.AlarmMember{})
	require.NoError(t, err)
	code, body = h.do("POST", base, `{"name":"after"}`, nil)
	assert.Equal(t, 201, code, body)
}
