package api

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path"
	"strings"
	"unicode/utf8"

	"github.com/danielgtaylor/huma/v2"

	"github.com/catalyst/catalyst/internal/workspace"
)

type filesOutput struct{ Body []workspace.File }

// workspaceDir returns the workspace root of a task ("" when none is wired).
func (s *server) workspaceDir(taskID string) string {
	if s.wsDir == nil {
		return ""
	}
	return s.wsDir(taskID)
}

// openWorkspace opens a task's workspace; nil (no error) when the task has
// no files yet. A missing directory is not created by a read.
func (s *server) openWorkspace(taskID string) (*workspace.Workspace, error) {
	dir := s.workspaceDir(taskID)
	if dir == "" {
		return nil, nil
	}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return workspace.Open(dir)
}

func (s *server) registerFileList(api huma.API) {
	huma.Register(api, withErrors(s.op(http.MethodGet, "/api/tasks/{id}/files", "list-task-files",
		"The generated files of a task (path and size), sorted by path", "files"), 404),
		func(ctx context.Context, in *taskIDInput) (*filesOutput, error) {
			if _, err := s.tasks.Get(ctx, actor(ctx), in.ID); err != nil {
				return nil, s.apiError(ctx, "task "+in.ID, err)
			}
			ws, err := s.openWorkspace(in.ID)
			if err != nil {
				return nil, s.apiError(ctx, "files of task "+in.ID, err)
			}
			files := []workspace.File{}
			if ws != nil {
				if files, err = ws.List(); err != nil {
					return nil, s.apiError(ctx, "files of task "+in.ID, err)
				}
			}
			return &filesOutput{Body: files}, nil
		})
}

// documentRaw adds the operations served by plain handlers to the OpenAPI
// document, so /docs lists every endpoint.
func documentRaw(oapi *huma.OpenAPI) {
	str := &huma.Schema{Type: huma.TypeString}
	pathParam := func(name, doc string) *huma.Param {
		return &huma.Param{Name: name, In: "path", Required: true, Schema: str, Description: doc}
	}
	problem := &huma.Response{Description: "Problem details (RFC 9457)", Content: map[string]*huma.MediaType{
		problemContentType: {Schema: &huma.Schema{Type: huma.TypeObject}},
	}}
	oapi.AddOperation(&huma.Operation{
		OperationID: "get-task-file", Method: http.MethodGet, Path: "/api/tasks/{id}/files/{path}", Tags: []string{"files"},
		Summary:     "The content of one generated file",
		Description: "Text files are served as text/plain (never executed by the browser); images with their type. Paths that are absolute, contain .., pass through a symlink or name .git are refused (400).",
		Parameters:  []*huma.Param{pathParam("id", "task id"), pathParam("path", "slash-separated path inside the workspace")},
		Responses: map[string]*huma.Response{
			"200": {Description: "File content", Content: map[string]*huma.MediaType{"text/plain": {Schema: str}, "application/octet-stream": {Schema: str}}},
			"400": problem, "404": problem,
		},
	})
	oapi.AddOperation(&huma.Operation{
		OperationID: "get-task-archive", Method: http.MethodGet, Path: "/api/tasks/{id}/archive.zip", Tags: []string{"files"},
		Summary:    "The generated files of a task as a zip archive",
		Parameters: []*huma.Param{pathParam("id", "task id")},
		Responses: map[string]*huma.Response{
			"200": {Description: "Zip archive", Content: map[string]*huma.MediaType{"application/zip": {Schema: &huma.Schema{Type: huma.TypeString, Format: "binary"}}}},
			"404": problem,
		},
	})
	oapi.AddOperation(&huma.Operation{
		OperationID: "stream-task-events", Method: http.MethodGet, Path: "/api/tasks/{id}/events", Tags: []string{"realtime"},
		Summary: "Server-Sent Events twin of WS /ws/{task_id}",
		Description: "Replays stored events after ?after=SEQ or Last-Event-ID, then streams live ones (event id = seq). " +
			"Heartbeats are comments. The stream ends after the task's terminal task_state event.",
		Parameters: []*huma.Param{
			pathParam("id", "task id"),
			{Name: "after", In: "query", Schema: &huma.Schema{Type: huma.TypeInteger}, Description: "replay events with seq greater than this"},
			{Name: "Last-Event-ID", In: "header", Schema: str, Description: "as after; set by EventSource on reconnect"},
		},
		Responses: map[string]*huma.Response{
			"200": {Description: "text/event-stream of AgentLog JSON objects", Content: map[string]*huma.MediaType{"text/event-stream": {Schema: str}}},
			"404": problem,
		},
	})
	oapi.AddOperation(&huma.Operation{
		OperationID: "websocket-task-events", Method: http.MethodGet, Path: "/ws/{task_id}", Tags: []string{"realtime"},
		Summary: "WebSocket: replay then live events of a task",
		Description: "Upgrade to WebSocket. Each message is one AgentLog JSON object (id, task_id, seq, type, agent_name, message, timestamp, data). " +
			"Stored events with seq > ?after (default 0) are replayed, then live ones follow without gap or duplicate; token deltas have seq 0. " +
			"The server pings every WEBSOCKET_PING_INTERVAL, closes with 4000 \"too slow\" when the client cannot keep up, and closes normally (1000) after the task's terminal state.",
		Parameters: []*huma.Param{pathParam("task_id", "task id"), {Name: "after", In: "query", Schema: &huma.Schema{Type: huma.TypeInteger}}},
		Responses: map[string]*huma.Response{
			"101": {Description: "Switching protocols"},
			"403": problem, "404": problem,
		},
	})
	oapi.AddOperation(&huma.Operation{
		OperationID: "get-preview", Method: http.MethodGet, Path: "/apps/{task_id}/{path}", Tags: []string{"files"},
		Summary: "Sandboxed preview of a deployed task's generated app",
		Description: "Available once the task has a deployment. Every response carries Content-Security-Policy: sandbox allow-scripts allow-forms " +
			"(no same-origin), so generated code cannot act as the user who opens it.",
		Parameters: []*huma.Param{pathParam("task_id", "task id"), pathParam("path", "file path; a directory serves its index.html")},
		Responses:  map[string]*huma.Response{"200": {Description: "File"}, "404": problem},
	})
}

// safeInlineTypes are served with their own media type; everything else is
// text/plain (if UTF-8) or application/octet-stream, so that a generated
// HTML or SVG file is never rendered on Catalyst's origin.
var safeInlineTypes = map[string]bool{
	"image/png": true, "image/jpeg": true, "image/gif": true, "image/webp": true,
	"image/x-icon": true, "image/vnd.microsoft.icon": true, "image/avif": true,
}

// handleFile serves GET /api/tasks/{id}/files/{path...}.
func (s *server) handleFile(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := s.tasks.Get(r.Context(), actor(r.Context()), id); err != nil {
		s.writeError(w, r, "task "+id, err)
		return
	}
	rel := r.PathValue("path")
	notFound := func() {
		writeProblem(w, http.StatusNotFound, "file "+workspace.QuotePath(rel)+" not found in task "+id)
	}
	dir := s.workspaceDir(id)
	if dir == "" {
		notFound()
		return
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		notFound()
		return
	}
	defer root.Close()
	f, st, err := workspace.OpenRegular(root, rel)
	switch {
	case errors.Is(err, workspace.ErrUnsafePath):
		writeProblem(w, http.StatusBadRequest, "not a file path inside the workspace: "+err.Error())
		return
	case err != nil:
		notFound()
		return
	}
	defer f.Close()

	var head [512]byte
	n, _ := io.ReadFull(f, head[:])
	ctype := mime.TypeByExtension(path.Ext(rel))
	if i := strings.IndexByte(ctype, ';'); i >= 0 {
		ctype = ctype[:i]
	}
	switch {
	case safeInlineTypes[ctype]:
	case looksLikeText(head[:n], n == len(head)):
		ctype = "text/plain; charset=utf-8"
	default:
		ctype = "application/octet-stream"
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		s.writeError(w, r, "file "+workspace.QuotePath(rel), err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	http.ServeContent(w, r, "", st.ModTime(), f)
}

// looksLikeText reports whether the start of a file is UTF-8 text without
// NUL bytes; truncated says the sample was cut, so an incomplete rune at its
// end is not held against it.
func looksLikeText(b []byte, truncated bool) bool {
	if bytes.IndexByte(b, 0) >= 0 {
		return false
	}
	if truncated {
		for i := 0; i < utf8.UTFMax-1 && len(b) > 0; i++ {
			if utf8.Valid(b) {
				return true
			}
			b = b[:len(b)-1]
		}
	}
	return utf8.Valid(b)
}

// handleArchive serves GET /api/tasks/{id}/archive.zip.
func (s *server) handleArchive(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := s.tasks.Get(r.Context(), actor(r.Context()), id); err != nil {
		s.writeError(w, r, "task "+id, err)
		return
	}
	ws, err := s.openWorkspace(id)
	if err != nil {
		s.writeError(w, r, "files of task "+id, err)
		return
	}
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", `attachment; filename="catalyst-task-`+safeFilename(id)+`.zip"`)
	if ws == nil {
		_ = zip.NewWriter(w).Close() // an empty archive
		return
	}
	if err := ws.Zip(w); err != nil {
		s.log.ErrorContext(r.Context(), "zip failed mid-stream", "task_id", id, "err", err)
	}
}

// safeFilename keeps an id usable inside a quoted header parameter.
func safeFilename(id string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x7f && (r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return r
		}
		return '_'
	}, id)
}
