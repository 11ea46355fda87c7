package bridge_test

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/discovery-platform/discovery/bridge"
)

func TestHandlerServesTheEmbeddedPage(t *testing.T) {
	app := fiber.New()
	app.Use(bridge.Prefix, bridge.Handler())
	app.Use(func(c *fiber.Ctx) error { return c.Status(404).SendString("fell through") })
	get := func(path string, hdr ...string) (int, map[string]string, string) {
		req := httptest.NewRequest("GET", path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := app.Test(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		h := map[string]string{}
		for k := range resp.Header {
			h[k] = resp.Header.Get(k)
		}
		return resp.StatusCode, h, string(b)
	}

	code, h, _ := get("/bridge")
	assert.Equal(t, 302, code)
	assert.Equal(t, "/bridge/", h["Location"])

	code, h, body := get("/bridge/")
	require.Equal(t, 200, code)
	assert.Contains(t, h["Content-Type"], "text/html")
	assert.Contains(t, body, `<script src="app.js" defer></script>`)
	assert.Contains(t, h["Content-Security-Policy"], "script-src 'self'", "no inline script may run")
	assert.Equal(t, "nosniff", h["X-Content-Type-Options"])

	code, h, body = get("/bridge/app.js")
	require.Equal(t, 200, code)
	assert.Contains(t, h["Content-Type"], "javascript")
	assert.True(t, strings.HasPrefix(body, "// Bridge"), body[:40])
	code, _, _ = get("/bridge/app.js", "If-None-Match", h["Etag"])
	assert.Equal(t, 304, code, "unchanged files are revalidated, not resent")

	// Every script the page loads is served, and is ours.
	for _, js := range []string{"images.js", "leases.js", "sessions.js", "activity.js", "settings.js"} {
		_, _, page := get("/bridge/")
		assert.Contains(t, page, `<script src="`+js+`" defer></script>`)
		code, h, body = get("/bridge/" + js)
		require.Equal(t, 200, code, js)
		assert.Contains(t, h["Content-Type"], "javascript")
		assert.True(t, strings.HasPrefix(body, "// Bridge"), js)
	}

	code, h, _ = get("/bridge/style.css")
	assert.Equal(t, 200, code)
	assert.Contains(t, h["Content-Type"], "text/css")

	code, _, _ = get("/bridge/nope.js")
	assert.Equal(t, 404, code)
	code, _, body = get("/bridgework")
	assert.Equal(t, 404, code)
	assert.Equal(t, "fell through", body, "only /bridge and below are Bridge's")
}
