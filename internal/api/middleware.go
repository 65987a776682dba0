package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/catalyst/catalyst/internal/telemetry"
)

// corsAllowed reports whether a browser page from origin may call the API
// (with the token: see guard): CORS_ORIGINS "*" allows every origin,
// otherwise the origin must be listed exactly (scheme, host and port).
// Opaque origins and the previews' origin are never allowed, "*" or not.
func (s *server) corsAllowed(origin string) bool {
	if origin == "null" || s.cfg.PreviewURL != "" && sameOrigin(origin, s.cfg.PreviewURL) {
		return false
	}
	return slices.Contains(s.cfg.CORSOrigins, "*") || slices.Contains(s.cfg.CORSOrigins, origin)
}

// Content-Security-Policies of the API's origin. JSON, files and streams
// get the strictest (a response opened as a document can do nothing); the
// dashboard loads only its own files; the docs pages' bundles inject styles.
const (
	apiCSP       = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; sandbox"
	dashboardCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; " +
		"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
	docsCSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; " +
		"connect-src 'self'; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

// securityHeaders sets the API origin's headers: no framing anywhere (no
// clickjacking of the dashboard), no sniffing, no referrer, and responses
// that other origins cannot embed.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		p := r.URL.Path
		switch {
		case p == "/docs" || p == "/redoc" || strings.HasPrefix(p, "/docs/"):
			h.Set("Content-Security-Policy", docsCSP)
		case p == "/api" || strings.HasPrefix(p, "/api/") || strings.HasPrefix(p, "/ws/") ||
			p == "/metrics" || strings.HasPrefix(p, "/openapi") || strings.HasPrefix(p, "/apps/"):
			h.Set("Content-Security-Policy", apiCSP)
		default:
			h.Set("Content-Security-Policy", dashboardCSP)
		}
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

// cors implements CORS per CORS_ORIGINS, answering preflight requests itself.
// A request from a refused origin gets no CORS headers (the browser then
// blocks it); a refused preflight gets 403.
func (s *server) cors(next http.Handler) http.Handler {
	wildcard := slices.Contains(s.cfg.CORSOrigins, "*")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Add("Vary", "Origin")
		preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
		if !s.corsAllowed(origin) {
			if preflight {
				writeProblem(w, http.StatusForbidden, "origin "+origin+" is not allowed by CORS_ORIGINS")
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		if wildcard {
			h.Set("Access-Control-Allow-Origin", "*")
		} else {
			h.Set("Access-Control-Allow-Origin", origin)
		}
		if !preflight {
			h.Set("Access-Control-Expose-Headers", "Link, Location, Content-Disposition")
			next.ServeHTTP(w, r)
			return
		}
		h.Add("Vary", "Access-Control-Request-Method")
		h.Add("Vary", "Access-Control-Request-Headers")
		h.Set("Access-Control-Allow-Methods", "GET, POST, PATCH, DELETE, OPTIONS")
		if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
			h.Set("Access-Control-Allow-Headers", req)
		}
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
	})
}

// statusWriter records the status and size of a response for the access log.
// It keeps http.Hijacker and http.Flusher reachable (Unwrap) for WebSocket
// upgrades and SSE.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush lets SSE and streamed downloads through the wrapper.
func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// patternOf returns the route template mux serves a request with ("GET
// /api/tasks/{id}"), or "" when no route matches (404, 405): the label of
// metrics and the name of spans, never the path with its ids.
func patternOf(mux *http.ServeMux) func(*http.Request) string {
	return func(r *http.Request) string {
		_, p := mux.Handler(r)
		switch {
		case p == "/": // the preview origin's catch-all 404
			return ""
		case p == "GET /api/" && r.URL.Path != "/api/": // unknown /api/ paths (apiSubtreeGuard)
			return ""
		}
		return p
	}
}

// accessLog logs one line per request through log/slog, counts it in the
// metrics and traces it (ENABLE_PERFORMANCE_MONITORING), labelled by its
// route template.
func (s *server) accessLog(pattern func(*http.Request) string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		r, span := telemetry.StartRequest(r)
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			status := sw.status
			if status == 0 {
				status = http.StatusSwitchingProtocols // hijacked (WebSocket)
				if r.Header.Get("Upgrade") == "" {
					status = http.StatusOK
				}
			}
			route := pattern(r)
			s.metrics.observe(r.Method, route, status, time.Since(start))
			telemetry.EndRequest(span, route, status)
			level := slog.LevelInfo
			if status >= 500 {
				level = slog.LevelError
			}
			s.log.LogAttrs(r.Context(), level, "http request",
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.Int("status", status),
				slog.Int64("bytes", sw.bytes),
				slog.Duration("duration", time.Since(start)),
				slog.String("remote", r.RemoteAddr),
			)
		}()
		next.ServeHTTP(sw, r)
	})
}

// recoverPanics turns a handler panic into a logged 500 problem response,
// reported to Sentry when SENTRY_DSN is set.
func (s *server) recoverPanics(pattern func(*http.Request) string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
				panic(v)
			}
			s.log.ErrorContext(r.Context(), "handler panic",
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.String("panic", fmt.Sprint(v)),
				slog.String("stack", strings.TrimSpace(string(debug.Stack()))),
			)
			telemetry.ReportPanic(r, pattern(r), v)
			writeProblem(w, http.StatusInternalServerError, "internal error; see the server log")
		}()
		next.ServeHTTP(w, r)
	})
}
