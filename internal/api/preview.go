package api

import (
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/catalyst/catalyst/internal/tasks"
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
	mux.HandleFunc("GET /apps/{task_id}/{grant}", s.servePreviewRoot)
	mux.HandleFunc("GET /apps/{task_id}/{grant}/{path...}", s.servePreview)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		setPreviewHeaders(w.Header())
		writeProblem(w, http.StatusNotFound, "this origin serves only the previews of generated apps, at the links the dashboard gives (/apps/{task_id}/{grant}/)")
	})
	var h http.Handler = mux
	h = hostGuard(s.hosts, h)
	h = s.recoverPanics(patternOf(mux), h)
	h = s.accessLog(patternOf(mux), h)
	return h
}

// handlePreviewRoot and handlePreview answer /apps/... on the API's origin:
// for an actor who may see the task, a redirect to the preview origin with
// a fresh grant, so links stored before previews moved (and the
// dashboard's fallback link) keep working, while the API's origin never
// serves generated content.
func (s *server) handlePreviewRoot(w http.ResponseWriter, r *http.Request) { s.redirectToPreview(w, r) }
func (s *server) handlePreview(w http.ResponseWriter, r *http.Request)     { s.redirectToPreview(w, r) }

func (s *server) redirectToPreview(w http.ResponseWriter, r *http.Request) {
	if s.cfg.PreviewURL == "" {
		writeProblem(w, http.StatusNotFound, "previews are not served by this server")
		return
	}
	id := r.PathValue("task_id")
	a := actor(r.Context())
	if _, err := s.tasks.Get(r.Context(), a, id); err != nil {
		s.writeError(w, r, "task "+id, err)
		return
	}
	rest := strings.TrimPrefix(r.URL.EscapedPath(), "/apps/"+url.PathEscape(id))
	target := s.previewURL(a, id) + strings.TrimPrefix(rest, "/")
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, target, http.StatusFound)
}

// previewGrant checks the grant of a preview request and that its actor
// may still see the task; it answers the request itself when not.
func (s *server) previewGrant(w http.ResponseWriter, r *http.Request) (taskID string, ok bool) {
	id := r.PathValue("task_id")
	a, err := s.checkPreviewGrant(r.PathValue("grant"), id)
	if err != nil {
		writeProblem(w, http.StatusNotFound, err.Error())
		return id, false
	}
	if _, err := s.store.GetTaskIn(r.Context(), tasks.ScopeOf(a), id); err != nil {
		// Gone from the actor's sight (removed from the project): the same
		// answer as a task that does not exist.
		s.writeError(w, r, "task "+id, err)
		return id, false
	}
	return id, true
}

// servePreviewRoot redirects /apps/{task_id}/{grant} to its slash form so
// that the app's relative links resolve.
func (s *server) servePreviewRoot(w http.ResponseWriter, r *http.Request) {
	setPreviewHeaders(w.Header())
	if _, ok := s.previewGrant(w, r); !ok {
		return
	}
	http.Redirect(w, r, r.URL.EscapedPath()+"/", http.StatusMovedPermanently)
}

// servePreview serves GET /apps/{task_id}/{grant}/{path...} on the preview
// origin: the task's generated files, once a deployment exists for it.
func (s *server) servePreview(w http.ResponseWriter, r *http.Request) {
	setPreviewHeaders(w.Header())
	id, ok := s.previewGrant(w, r)
	if !ok {
		return
	}
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
