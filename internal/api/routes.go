package api

import (
	"bytes"
	"embed"
	"io/fs"
	"net/http"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
)

//go:embed docs/swagger.html docs/redoc.html docs/assets
var docsFS embed.FS

// registerRaw adds the routes that are not JSON operations: realtime
// streams, file content and archives, previews, docs pages and the UI.
func (s *server) registerRaw(mux *http.ServeMux, oapi *huma.OpenAPI) {
	documentRaw(oapi)

	mux.HandleFunc("GET /ws/{task_id}", s.handleWebSocket)
	mux.HandleFunc("GET /api/tasks/{id}/events", s.handleSSE)
	mux.HandleFunc("GET /api/tasks/{id}/files/{path...}", s.handleFile)
	mux.HandleFunc("GET /api/tasks/{id}/archive.zip", s.handleArchive)
	mux.HandleFunc("GET /apps/{task_id}", s.handlePreviewRoot)
	mux.HandleFunc("GET /apps/{task_id}/{path...}", s.handlePreview)

	mux.Handle("GET /docs", staticPage(docsFS, "docs/swagger.html"))
	mux.Handle("GET /redoc", staticPage(docsFS, "docs/redoc.html"))
	assets, _ := fs.Sub(docsFS, "docs/assets")
	mux.Handle("GET /docs/assets/", http.StripPrefix("/docs/assets/", cacheFor(24*time.Hour, http.FileServerFS(assets))))

	if s.cfg.EnableMetrics {
		mux.HandleFunc("GET /metrics", s.handleMetrics)
	}
	mux.HandleFunc("GET /", s.handleUI)
}

// staticPage serves one embedded HTML page.
func staticPage(fsys fs.FS, name string) http.Handler {
	page, err := fs.ReadFile(fsys, name)
	if err != nil {
		panic("api: embedded page missing: " + name) // caught by the embed directive at build time
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(page))
	})
}

func cacheFor(d time.Duration, next http.Handler) http.Handler {
	v := "public, max-age=" + strconv.FormatInt(int64(d/time.Second), 10)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", v)
		next.ServeHTTP(w, r)
	})
}

// hashedAsset matches build outputs whose name carries a content hash
// (Vite: assets/index-BX3k9aZq.js), which may be cached forever.
var hashedAsset = regexp.MustCompile(`[.-][A-Za-z0-9_-]{8,}\.(js|mjs|css|woff2?|png|jpe?g|svg|webp|ico|wasm|map)$`)

// handleUI serves the dashboard: a file of Options.UI if it exists,
// index.html for client-side routes.
func (s *server) handleUI(w http.ResponseWriter, r *http.Request) {
	if s.ui == nil {
		if r.URL.Path == "/" {
			http.Redirect(w, r, "/docs", http.StatusFound)
			return
		}
		writeProblem(w, http.StatusNotFound, "no such page: "+r.URL.Path+" (this build has no dashboard; the API is at /api/, docs at /docs)")
		return
	}
	name := strings.TrimPrefix(path.Clean(r.URL.Path), "/")
	if name == "" {
		name = "index.html"
	}
	if fi, err := fs.Stat(s.ui, name); err == nil && !fi.IsDir() {
		if hashedAsset.MatchString(name) {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			w.Header().Set("Cache-Control", "no-cache")
		}
		http.ServeFileFS(w, r, s.ui, name)
		return
	}
	// A missing file that looks like an asset is a real 404; anything else
	// is a client-side route of the single-page app.
	if path.Ext(name) != "" && name != "index.html" {
		writeProblem(w, http.StatusNotFound, "no such file: "+r.URL.Path)
		return
	}
	index, err := fs.ReadFile(s.ui, "index.html")
	if err != nil {
		writeProblem(w, http.StatusNotFound, "the dashboard has no index.html")
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, "index.html", time.Time{}, bytes.NewReader(index))
}
