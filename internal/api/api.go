// Package api is Catalyst's HTTP surface: the original backend's REST API
// (same paths and JSON fields), its OpenAPI 3.1 document and offline docs,
// the realtime event streams (WebSocket and SSE), the sandboxed previews of
// generated apps and the embedded dashboard.
//
// Handlers parse and validate, call the store (or the Runner), and return
// errors; one mapper turns domain sentinel errors into RFC 9457 problem
// responses.
package api

import (
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/catalyst/catalyst/internal/accounts"
	"github.com/catalyst/catalyst/internal/audit"
	"github.com/catalyst/catalyst/internal/events"
	"github.com/catalyst/catalyst/internal/explorer"
	"github.com/catalyst/catalyst/internal/graph"
	"github.com/catalyst/catalyst/internal/ratelimit"
	"github.com/catalyst/catalyst/internal/store"
	"github.com/catalyst/catalyst/internal/tasks"
)

// Settings are the server's own knobs; app maps the configuration to them
// (the API reads no Config and applies no default of its own).
type Settings struct {
	// APIToken is the credential every API request needs (required).
	APIToken string
	// PublicURL is how users reach the API; PreviewURL the origin previews
	// are served from (never the API's).
	PublicURL, PreviewURL string
	// AllowedHosts are the Host names accepted besides loopback names and
	// those of PublicURL; BindAddress is accepted too when it is an IP.
	AllowedHosts []string
	BindAddress  string
	// CORSOrigins lists the origins that may call with the token ("*": any).
	CORSOrigins []string
	// MaxBodyBytes bounds a request body (required, positive).
	MaxBodyBytes int64
	// WebSocketPingInterval is how often an idle stream pings (required).
	WebSocketPingInterval time.Duration
	// SessionTimeout is how long a dashboard session lasts unused.
	SessionTimeout time.Duration
	EnableMetrics  bool
	// RateLimit is the requests per minute a client address, and a
	// signed-in user, may send (CATALYST_RATE_LIMIT); LoginRateLimit the
	// sign-in and sign-up attempts per minute per client and per e-mail
	// address (CATALYST_LOGIN_RATE_LIMIT). 0 turns a limit off.
	RateLimit, LoginRateLimit int
	// TrustedProxies are the reverse proxies whose X-Forwarded-For names
	// the client (CATALYST_TRUSTED_PROXIES).
	TrustedProxies []netip.Prefix
}

// Options wires the API to the rest of Catalyst.
type Options struct {
	Settings Settings
	Store    store.Store
	Broker   events.Bus
	// NATS reports the NATS connection for /api/health (nil error:
	// connected); nil when NATS is not used.
	NATS func() error
	// Tasks is the task use cases; nil: a Service over Store whose tasks
	// stay pending for whichever runner looks.
	Tasks *tasks.Service
	// Explorer starts and reads scans; nil: one over Store and Tasks with
	// no connectors (its scans run wherever explore steps are bound).
	Explorer *explorer.Service
	// ScanWait bounds POST /api/explorer/scan?wait=true (0: 120 s).
	ScanWait time.Duration
	// Running counts the tasks this process runs now (metrics); optional.
	Running func() int
	// WorkspaceDir returns the root directory of a task's workspace (its
	// generated files). Nil: no task has files.
	WorkspaceDir func(taskID string) string
	// UI holds the dashboard's built assets, served at / with an index.html
	// fallback for client-side routes; may be nil.
	UI      fs.FS
	Logger  *slog.Logger
	Version string
	// Accounts signs users in (sessions, API keys); nil: only the server
	// token is accepted and the /api/auth and /api/users endpoints are absent.
	Accounts *accounts.Service
	// Audit is the audit log (ENABLE_AUDIT_LOGS); nil records nothing.
	Audit *audit.Log
	// RateLimited is told about every request refused by a rate limit,
	// besides the log and the metrics: the audit trail. Optional.
	RateLimited func(r *http.Request, ev ratelimit.Event)
}

// maxPromptRunes bounds a task prompt.
const maxPromptRunes = 20000

// server holds the wired dependencies of the handlers.
type server struct {
	cfg      Settings
	store    store.Store
	broker   events.Bus
	nats     func() error
	tasks    *tasks.Service
	explorer *explorer.Service
	scanWait time.Duration
	running  func() int
	wsDir    func(string) string
	ui       fs.FS
	log      *slog.Logger
	version  string

	metrics *metrics
	limiter *ratelimit.Limiter
	limited func(*http.Request, ratelimit.Event)
	auth    *authenticator
	// grantKey signs preview grants (previewgrant.go).
	grantKey []byte

	accounts *accounts.Service
	auditLog *audit.Log
	recorder audit.Recorder // auditLog, or Nop
	auditOn  bool
	// hosts are the Host names both origins answer to.
	hosts []string

	// streaming knobs; tests shorten them.
	writeTimeout time.Duration // one WebSocket/SSE write
	subBuffer    int           // broker buffer per stream subscriber
}

// New returns the HTTP handler of the whole server.
func New(opts Options) (http.Handler, error) {
	s, err := newServer(opts)
	if err != nil {
		return nil, err
	}
	return s.handler(), nil
}

func newServer(opts Options) (*server, error) {
	if opts.Store == nil {
		return nil, errors.New("api: Options.Store is required")
	}
	cfg := opts.Settings
	switch {
	case cfg.APIToken == "":
		return nil, errors.New("api: Settings.APIToken is required: every API request needs the server token")
	case cfg.MaxBodyBytes <= 0:
		return nil, errors.New("api: Settings.MaxBodyBytes must be positive")
	case cfg.WebSocketPingInterval <= 0:
		return nil, errors.New("api: Settings.WebSocketPingInterval must be positive")
	}
	broker := opts.Broker
	if broker == nil {
		broker = events.NewBroker()
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	svc := opts.Tasks
	if svc == nil {
		svc = tasks.New(tasks.Options{Store: opts.Store, Graphs: graph.Builtin(),
			Recorder: &events.Recorder{Store: opts.Store, Broker: broker}})
	}
	exp := opts.Explorer
	if exp == nil {
		exp = explorer.New(explorer.Options{Store: opts.Store, Tasks: svc, Logger: logger})
	}
	scanWait := opts.ScanWait
	if scanWait <= 0 {
		scanWait = defaultScanWait
	}
	version := opts.Version
	if version == "" {
		version = "dev"
	}
	var recorder audit.Recorder = audit.Nop{}
	if opts.Audit != nil {
		recorder = opts.Audit
	}
	s := &server{
		accounts:     opts.Accounts,
		auditLog:     opts.Audit,
		recorder:     recorder,
		auditOn:      opts.Audit != nil,
		cfg:          cfg,
		store:        opts.Store,
		broker:       broker,
		nats:         opts.NATS,
		tasks:        svc,
		explorer:     exp,
		scanWait:     scanWait,
		running:      opts.Running,
		wsDir:        opts.WorkspaceDir,
		ui:           opts.UI,
		log:          logger,
		version:      version,
		writeTimeout: 10 * time.Second,
		subBuffer:    events.DefaultBuffer,
		metrics:      newMetrics(),
		auth:         newAuthenticator(cfg.APIToken, cfg.PublicURL, cfg.SessionTimeout),
		grantKey:     previewGrantKey(cfg.APIToken),
		hosts:        allowedHosts(cfg.AllowedHosts, cfg.BindAddress, cfg.PublicURL, cfg.PreviewURL),
		limited:      opts.RateLimited,
	}
	lim, err := ratelimit.New(ratelimit.Options{
		PerMinute:      cfg.RateLimit,
		LoginPerMinute: cfg.LoginRateLimit,
		TrustedProxies: cfg.TrustedProxies,
		OnLimited:      s.rateLimited,
		Deny: func(w http.ResponseWriter, _ *http.Request, detail string) {
			writeProblem(w, http.StatusTooManyRequests, detail)
		},
	})
	if err != nil {
		return nil, err
	}
	s.limiter = lim
	return s, nil
}

// handler builds the routes and wraps them in the middleware chain.
func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	api := humago.New(mux, s.humaConfig())
	s.registerOperations(api)
	s.registerRaw(mux, api.OpenAPI())
	s.documentSecurity(api.OpenAPI())

	var h http.Handler = apiSubtreeGuard(mux)
	// Per user once the credential is known; per client before anything
	// else runs, so that floods and password guessing cost nothing.
	h = s.limiter.Users(rateLimitUser, h)
	h = s.withAdminAudit(h)
	h = s.guard(h)
	h = s.auditRequests(h)
	h = s.cors(h)
	h = securityHeaders(h)
	h = hostGuard(s.hosts, h)
	h = s.limiter.Clients(h)
	h = s.recoverPanics(patternOf(mux), h)
	h = s.accessLog(patternOf(mux), h)
	return h
}

// humaConfig is huma's default configuration without what would change the
// original's JSON shapes: no `$schema` field and no `Link: describedby`
// header (both come from the default create hook), no CDN-loading docs page.
func (s *server) humaConfig() huma.Config {
	c := huma.DefaultConfig("Catalyst API", s.version)
	c.Info.Description = "Catalyst turns a prompt into a planned, designed, coded, tested, " +
		"reviewed and deployed application. REST paths and JSON fields follow the original " +
		"backend guide; realtime events stream over WS /ws/{task_id} and SSE."
	c.CreateHooks = nil
	c.DocsPath = ""    // /docs and /redoc are ours, from embedded assets
	c.SchemasPath = "" // schemas are inline in /openapi.json
	c.OpenAPIPath = "/openapi"
	// Unknown request fields are ignored, as FastAPI/pydantic did: clients
	// of the original that send extra fields keep working.
	c.AllowAdditionalPropertiesByDefault = true
	c.Transformers = append(c.Transformers, capProblems)
	return c
}

// apiSubtreeGuard answers 404 for unknown paths below /api/ (the pattern
// "GET /api/" of the info endpoint would otherwise match the whole subtree)
// and turns the mux's plain-text 404/405 into problem responses.
func apiSubtreeGuard(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		switch {
		case pattern == "GET /api/" && r.URL.Path != "/api/":
			writeProblem(w, http.StatusNotFound, "no such endpoint: "+clip(r.URL.Path, maxEchoedValue))
		case pattern == "":
			rec := &headerOnly{header: http.Header{}}
			h.ServeHTTP(rec, r)
			if rec.status == http.StatusNotFound || rec.status == http.StatusMethodNotAllowed {
				if allow := rec.header.Get("Allow"); allow != "" {
					w.Header().Set("Allow", allow)
				}
				writeProblem(w, rec.status, clip(r.Method, maxEchoedValue)+" "+clip(r.URL.Path, maxEchoedValue)+": "+strings.ToLower(http.StatusText(rec.status)))
				return
			}
			mux.ServeHTTP(w, r)
		default:
			mux.ServeHTTP(w, r)
		}
	})
}

// headerOnly records the status and headers a handler sets, discarding the body.
type headerOnly struct {
	header http.Header
	status int
}

func (h *headerOnly) Header() http.Header { return h.header }
func (h *headerOnly) WriteHeader(code int) {
	if h.status == 0 {
		h.status = code
	}
}
func (h *headerOnly) Write(b []byte) (int, error) {
	h.WriteHeader(http.StatusOK)
	return len(b), nil
}

// NewPreview returns the handler of the previews' own origin
// (CATALYST_PREVIEW_URL): generated apps, sandboxed, and nothing else.
func NewPreview(opts Options) (http.Handler, error) {
	s, err := newServer(opts)
	if err != nil {
		return nil, err
	}
	return s.previewHandler(), nil
}
