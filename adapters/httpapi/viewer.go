package httpapi

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

// webFS holds the viewer page: plain HTML, JS and CSS, no build step.
//
//go:embed web
var webFS embed.FS

// viewerPage is the page served at GET /, with its script and style
// inlined so the page is one request and needs no other route.
var viewerPage = func() []byte {
	read := func(name string) string {
		b, err := fs.ReadFile(webFS, "web/"+name)
		if err != nil {
			panic("httpapi: embedded viewer file missing: " + name)
		}
		return string(b)
	}
	page := read("index.html")
	page = strings.Replace(page, "/*STYLE*/", read("style.css"), 1)
	page = strings.Replace(page, "/*SCRIPT*/", read("viewer.js"), 1)
	return []byte(page)
}()

// wallPage is the device wall served at GET /wall, inlined the same way.
var wallPage = func() []byte {
	read := func(name string) string {
		b, err := fs.ReadFile(webFS, "web/"+name)
		if err != nil {
			panic("httpapi: embedded wall file missing: " + name)
		}
		return string(b)
	}
	page := read("wall.html")
	page = strings.Replace(page, "/*STYLE*/", read("style.css"), 1)
	page = strings.Replace(page, "/*SCRIPT*/", read("wall.js"), 1)
	return []byte(page)
}()

func (s *Server) handleViewer(w http.ResponseWriter, _ *http.Request) {
	servePage(w, viewerPage)
}

// servePage writes one of the embedded pages with its security headers.
func servePage(w http.ResponseWriter, page []byte) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy",
		"default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "+
			"connect-src 'self' ws: wss:; media-src 'self' blob: mediastream:; img-src 'self' data:; "+
			"base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	_, _ = w.Write(page)
}
