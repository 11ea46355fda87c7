// Package bridge is Discovery's web dashboard, served by the platform at
// /bridge: a small static front end (HTML, CSS and our own JavaScript, embedded
// in the binary) that calls the REST API with the operator's token, so every
// call goes through the API's authentication and authorisation. It holds no
// state and no rule of its own.
package bridge

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"path"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// Prefix is where the platform serves Bridge.
const Prefix = "/bridge"

//go:embed static
var static embed.FS

// asset is one embedded file, ready to serve.
type asset struct {
	body  []byte
	ctype string
	etag  string
}

// securityHeaders keep the dashboard to its own files: no inline script, no
// framing, no other origin; the token never leaves in a Referer.
var securityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
	"X-Content-Type-Options": "nosniff",
	"X-Frame-Options":        "DENY",
	"Referrer-Policy":        "no-referrer",
}

// Handler serves the dashboard's files under Prefix: Prefix+"/" is the page,
// the rest are its script and style. The page routes itself (#/…), so the
// server knows no page but one.
func Handler() fiber.Handler {
	assets := map[string]asset{}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ctype := mime.TypeByExtension(path.Ext(p))
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		assets[strings.TrimPrefix(p, "static")] = asset{body: b, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		panic("bridge: embedded files: " + err.Error()) // a broken build, not a runtime condition
	}
	return func(c *fiber.Ctx) error {
		name, ok := strings.CutPrefix(c.Path(), Prefix)
		if !ok || (name != "" && name[0] != '/') {
			return c.Next() // "/bridgework" is not ours
		}
		if c.Method() != fiber.MethodGet && c.Method() != fiber.MethodHead {
			return fiber.NewError(fiber.StatusMethodNotAllowed, "Bridge serves files: GET only")
		}
		if name == "" {
			return c.Redirect(Prefix+"/", fiber.StatusFound)
		}
		if name == "/" {
			name = "/index.html"
		}
		a, ok := assets[name]
		if !ok {
			return fiber.NewError(fiber.StatusNotFound, "Bridge has no file "+name)
		}
		for k, v := range securityHeaders {
			c.Set(k, v)
		}
		// Revalidate every time: a new platform binary brings new files.
		c.Set(fiber.HeaderCacheControl, "no-cache")
		c.Set(fiber.HeaderETag, a.etag)
		if c.Get(fiber.HeaderIfNoneMatch) == a.etag {
			return c.SendStatus(fiber.StatusNotModified)
		}
		c.Set(fiber.HeaderContentType, a.ctype)
		return c.Send(a.body)
	}
}
