package api

import (
	"net/http"
	"path"
	"strings"
)

// Generated apps are served from their own origin (CATALYST_PREVIEW_URL, a
// listener of its own), never from the API's: a script there is not
// same-origin with the dashboard, so the browser never counts it as the
// dashboard, and the API refuses its origin outright. On top, every preview
// response is sandboxed (an opaque origin: Origin: null on whatever it
// sends) and may connect nowhere but its own origin.

// previewCSP sandboxes every preview response: scripts and forms run, but in
// an opaque origin (no allow-same-origin), so generated code cannot read
// Catalyst's storage, and it may load and send nothing outside its origin.
const previewCSP = "sandbox allow-scripts allow-forms; default-src 'self' 'unsafe-inline' 'unsafe-eval' data: blob:; " +
	"connect-src 'self'; form-action 'self'; base-uri 'self'; object-src 'none'; frame-ancestors 'none'"

// setPreviewHeaders applies the preview's security headers.
func setPreviewHeaders(h http.Header) {
	h.Set("Content-Security-Policy", previewCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
}

// previewHandler is the preview origin's whole server: previews and nothing
// else, behind the same Host check as the API.
func (s *server) previewHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /apps/{task_id}", s.servePreviewRoot)
	mux.HandleFunc("GET /apps/{task_id}/{path...}", s.servePreview)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		setPreviewHeaders(w.Header())
		writeProblem(w, http.StatusNotFound, "this origin serves only the previews of generated apps, at /apps/{task_id}/")
	})
	var h http.Handler = mux
	h = hostGuard(s.hosts, h)
	h = s.recoverPanics(patternOf(mux), h)
	h = s.accessLog(patternOf(mux), h)
	return h
}

// handlePreviewRoot and handlePreview answer /apps/... on the API's origin:
// a redirect to the preview origin, so links stored before previews moved
// keep working, while the API's origin never serves generated content.
func (s *server) handlePreviewRoot(w http.ResponseWriter, r *http.Request) { s.redirectToPreview(w, r) }
func (s *server) handlePreview(w http.ResponseWriter, r *http.Request)     { s.redirectToPreview(w, r) }

func (s *server) redirectToPreview(w http.ResponseWriter, r *http.Request) {
	if s.cfg.PreviewURL == "" {
		writeProblem(w, http.StatusNotFound, "previews are not served by this server")
		return
	}
	target := strings.TrimRight(s.cfg.PreviewURL, "/") + r.URL.EscapedPath()
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	http.Redirect(w, r, target, http.StatusFound)
}

// servePreviewRoot redirects /apps/{task_id} to /apps/{task_id}/ so that the
// app's relative links resolve.
func (s *server) servePreviewRoot(w http.ResponseWriter, r *http.Request) {
	setPreviewHeaders(w.Header())
	http.Redirect(w, r, "/apps/"+r.PathValue("task_id")+"/", http.StatusMovedPermanently)
}

// servePreview serves GET /apps/{task_id}/{path...} on the preview origin:
// the task's generated files, once a deployment exists for it.
func (s *server) servePreview(w http.ResponseWriter, r *http.Request) {
	setPreviewHeaders(w.Header())
	id := r.PathValue("task_id")
	if _, err := s.store.GetDeployment(r.Context(), id); err != nil {
		if statusOf(err) == http.StatusNotFound {
			writeProblem(w, http.StatusNotFound, "task "+id+" has no deployment (yet): nothing to preview")
			return
		}
		s.writeError(w, r, "deployment of task "+id, err)
		return
	}
	rel := r.PathValue("path")
	if rel == "" || strings.HasSuffix(rel, "/") {
		rel += "index.html"
	}
	rel, err := cleanRel(rel)
	if err != nil {
		writeProblem(w, http.StatusNotFound, "not found")
		return
	}
	root, err := taskRoot(s.workspaceDir(id))
	if err != nil {
		writeProblem(w, http.StatusNotFound, "task "+id+" has no files")
		return
	}
	defer root.Close()
	fi, err := lstatNoSymlink(root, rel)
	if err == nil && fi.IsDir() {
		// A directory: redirect to its slash form, which serves index.html.
		http.Redirect(w, r, path.Base(rel)+"/", http.StatusMovedPermanently)
		return
	}
	f, st, err := openRegular(root, rel)
	if err != nil {
		writeProblem(w, http.StatusNotFound, "file "+rel+" not found in the preview of task "+id)
		return
	}
	defer f.Close()
	// ServeContent sets Content-Type from the extension (sniffing otherwise).
	http.ServeContent(w, r, rel, st.ModTime(), f)
}
