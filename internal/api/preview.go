package api

import (
	"net/http"
	"path"
	"strings"
)

// previewCSP sandboxes every preview response: scripts and forms run, but in
// an opaque origin (no allow-same-origin), so generated code cannot read
// Catalyst's storage or call its API as the user who opened the preview.
const previewCSP = "sandbox allow-scripts allow-forms"

// setPreviewHeaders applies the preview's security headers.
func setPreviewHeaders(h http.Header) {
	h.Set("Content-Security-Policy", previewCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
}

// handlePreviewRoot redirects /apps/{task_id} to /apps/{task_id}/ so that the
// app's relative links resolve.
func (s *server) handlePreviewRoot(w http.ResponseWriter, r *http.Request) {
	setPreviewHeaders(w.Header())
	http.Redirect(w, r, "/apps/"+r.PathValue("task_id")+"/", http.StatusMovedPermanently)
}

// handlePreview serves GET /apps/{task_id}/{path...}: the task's generated
// files, once a deployment exists for it.
func (s *server) handlePreview(w http.ResponseWriter, r *http.Request) {
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
