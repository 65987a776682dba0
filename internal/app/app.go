// Package app wires Catalyst's parts together by hand, in one place, for
// every subcommand: configuration → logger → store → events → models →
// executor → HTTP API. Nothing else decides which store or executor is used.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/catalyst/catalyst/internal/accounts"
	"github.com/catalyst/catalyst/internal/agent"
	"github.com/catalyst/catalyst/internal/api"
	"github.com/catalyst/catalyst/internal/audit"
	"github.com/catalyst/catalyst/internal/coding"
	"github.com/catalyst/catalyst/internal/config"
	"github.com/catalyst/catalyst/internal/connector"
	gitsource "github.com/catalyst/catalyst/internal/connector/git"
	"github.com/catalyst/catalyst/internal/connector/github"
	"github.com/catalyst/catalyst/internal/connector/jira"
	"github.com/catalyst/catalyst/internal/connector/netpolicy"
	"github.com/catalyst/catalyst/internal/connector/servicenow"
	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/events"
	"github.com/catalyst/catalyst/internal/events/natsbus"
	"github.com/catalyst/catalyst/internal/explorer"
	"github.com/catalyst/catalyst/internal/graph"
	"github.com/catalyst/catalyst/internal/llm"
	"github.com/catalyst/catalyst/internal/llm/offline"
	"github.com/catalyst/catalyst/internal/llm/providers"
	"github.com/catalyst/catalyst/internal/logging"
	"github.com/catalyst/catalyst/internal/pipeline"
	"github.com/catalyst/catalyst/internal/ratelimit"
	"github.com/catalyst/catalyst/internal/sandbox"
	"github.com/catalyst/catalyst/internal/store"
	"github.com/catalyst/catalyst/internal/store/mongo"
	"github.com/catalyst/catalyst/internal/store/sqlite"
	"github.com/catalyst/catalyst/internal/tasks"
	"github.com/catalyst/catalyst/internal/telemetry"
	"github.com/catalyst/catalyst/internal/workspace"
	"github.com/catalyst/catalyst/web"
)

// Version is set at build time with -ldflags "-X .../internal/app.Version=...".
var Version = "dev"

// App is a wired Catalyst instance.
type App struct {
	Config *config.Config
	Logger *slog.Logger
	Store  store.Store
	// Bus carries task events to followers: in process, or through NATS
	// when NATS_URL is set, so that every process streams every task.
	Bus      events.Bus
	Recorder *events.Recorder
	// NATS is the connection to NATS_URL (nil without it); it reconnects
	// for ever, and Close closes it.
	NATS *nats.Conn
	// snapshotCache unpacks stored workspaces for the API when scaled out.
	snapshotCache *workspace.Materializer
	Models        *llm.Router
	Executor      *pipeline.Executor
	// Tasks is the use-case layer every front end goes through.
	Tasks *tasks.Service
	// Explorer starts, reads and runs scans (explore tasks).
	Explorer *explorer.Service
	Graphs   *graph.Registry
	// StoreKind describes the store in use ("sqlite <path>" or "mongodb <db>").
	StoreKind string
	// Queue and Worker are set when scaled out (NATS_URL): tasks are
	// submitted to the JetStream work queue, and Worker, once started,
	// runs them from it.
	Queue  *pipeline.Queue
	Worker *pipeline.Worker
	// Telemetry is tracing (ENABLE_PERFORMANCE_MONITORING) and Sentry
	// (SENTRY_DSN); Close flushes it.
	Telemetry *telemetry.Telemetry

	// Accounts signs users in; Audit is the audit log (nil when
	// ENABLE_AUDIT_LOGS=false).
	Accounts *accounts.Service
	Audit    *audit.Log

	natsBus *natsbus.Bus
}

// openStore opens MongoDB when MONGO_URL is set, else the SQLite file in the
// data directory, and describes which.
func openStore(ctx context.Context, cfg *config.Config) (store.Store, string, error) {
	var st store.Store
	var kind string
	var err error
	if cfg.MongoURL != "" {
		openCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		st, err = mongo.Open(openCtx, cfg.MongoURL, cfg.DBName)
		cancel()
		kind = "mongodb database " + cfg.DBName
	} else {
		path := filepath.Join(cfg.DataDir, "catalyst.db")
		st, err = sqlite.Open(ctx, path)
		kind = "sqlite " + path
	}
	if err != nil {
		return nil, "", fmt.Errorf("opening store: %w", err)
	}
	return st, kind, nil
}

func newAccounts(cfg *config.Config, st store.Store) (*accounts.Service, error) {
	mode, err := accounts.ParseSignupMode(cfg.Signup)
	if err != nil {
		return nil, fmt.Errorf("CATALYST_SIGNUP: %w", err)
	}
	return accounts.New(accounts.Options{Store: st, SessionTimeout: cfg.SessionTimeout, Signup: mode})
}

// OpenAccounts opens the store and the accounts over it, for commands that
// need nothing else (catalyst user create); close the store when done.
func OpenAccounts(ctx context.Context, cfg *config.Config) (*accounts.Service, store.Store, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("data directory %s: %w", cfg.DataDir, err)
	}
	st, _, err := openStore(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	acc, err := newAccounts(cfg, st)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return acc, st, nil
}

// New opens the store and builds every part; Close releases them.
func New(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*App, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data directory %s: %w", cfg.DataDir, err)
	}
	a := &App{Config: cfg, Logger: logger}
	var err error
	if a.Store, a.StoreKind, err = openStore(ctx, cfg); err != nil {
		return nil, err
	}

	redactor := logging.NewRedactor(cfg.Secrets()).WithPII(cfg.EnablePIIRedaction)
	// Set up before anything runs, so that the first request and task are
	// traced and reported.
	a.Telemetry, err = telemetry.Setup(ctx, telemetry.Options{
		Tracing:     cfg.EnablePerformanceMonitoring,
		SentryDSN:   cfg.SentryDSN,
		Version:     Version,
		Environment: cfg.Environment,
		Redact:      logging.NewRedactor(cfg.Secrets()).Redact,
		Logger:      logger,
	})
	if err != nil {
		a.Store.Close()
		return nil, err
	}
	a.Bus = events.NewBroker()
	if cfg.NATSURL != "" {
		if a.NATS, err = connectNATS(cfg.NATSURL, logger); err != nil {
			a.Telemetry.Shutdown(ctx)
			a.Store.Close()
			return nil, err
		}
		a.natsBus = natsbus.New(a.NATS, natsbus.Options{Logger: logger})
		a.Bus = a.natsBus
		if a.Queue, err = openQueue(ctx, a.NATS, cfg.LeaseTTL, logger); err != nil {
			a.closeNATS()
			a.Telemetry.Shutdown(ctx)
			a.Store.Close()
			return nil, err
		}
	}
	a.Recorder = &events.Recorder{Store: a.Store, Broker: a.Bus, Redact: redactor.Redact}
	if a.Accounts, err = newAccounts(cfg, a.Store); err != nil {
		a.closeNATS()
		a.Store.Close()
		return nil, err
	}
	if cfg.EnableAuditLogs {
		a.Audit = audit.New(audit.Options{Store: a.Store, Redact: redactor.Redact, Logger: logger})
	}

	a.Models, err = NewRouter(cfg, logger)
	if err != nil {
		a.closeNATS()
		a.Telemetry.Shutdown(ctx)
		a.Store.Close()
		return nil, fmt.Errorf("LLM configuration: %w", err)
	}

	// Generated code must not see the database or other tasks' workspaces.
	var hidden []string
	if abs, err := filepath.Abs(cfg.DataDir); err == nil {
		hidden = append(hidden, abs)
	}
	sb := sandbox.New(sandbox.Options{HiddenPaths: hidden})
	var publisher agent.PullRequests
	if cfg.GitHubToken != "" && !cfg.MockDeployment {
		client, err := github.New(cfg.GitHubToken)
		if err != nil {
			a.closeNATS()
			a.Telemetry.Shutdown(ctx)
			a.Store.Close()
			return nil, fmt.Errorf("GitHub client: %w", err)
		}
		publisher = github.NewPublisher(client)
	}

	a.Graphs = graph.Builtin()
	deps := agent.Deps{
		Models:         a.Models,
		Store:          a.Store,
		PreviewURL:     previewBase(cfg),
		MockDeployment: cfg.MockDeployment,
		GitHubToken:    cfg.GitHubToken,
		AgentTimeout:   cfg.AgentTimeout,
		WorkspaceDir:   a.WorkspaceDir,
		GitHub:         publisher,
		Sandbox:        sb.Run,
		CoderLimits:    coding.Limits{MaxSteps: cfg.CoderMaxSteps, MaxTokens: cfg.CoderMaxTokens, MaxCost: cfg.CoderMaxCost},
		RepoPolicy:     netpolicy.New(netpolicy.Options{AllowPrivate: cfg.ExplorerAllowPrivate}),
	}
	buildSteps, changeSteps := agent.Steps(deps), agent.ChangeSteps(deps)
	sources, err := explorerSources(cfg)
	if err != nil {
		a.closeNATS()
		a.Store.Close()
		return nil, err
	}
	// The Explorer needs the task service, which needs the executor, which
	// needs the Explorer's steps: the steps are bound once all exist.
	var exploreSteps map[string]agent.Step
	a.Executor = pipeline.New(pipeline.Options{
		Store:    a.Store,
		Recorder: a.Recorder,
		Graphs:   a.Graphs,
		Steps: func(kind string) map[string]agent.Step {
			switch kind {
			case domain.KindBuild:
				return buildSteps
			case domain.KindChange:
				return changeSteps
			case domain.KindExplore:
				return exploreSteps
			}
			return nil
		},
		LeaseTTL:      cfg.LeaseTTL,
		MaxConcurrent: cfg.MaxConcurrentTasks,
		Limits:        graph.Limits{MaxFixRounds: cfg.MaxFixIterations, MaxCost: cfg.MaxTaskCost},
		AgentTimeout:  cfg.AgentTimeout,
		Served: func() domain.Served {
			sel := a.Models.Describe(domain.NodePlanner)
			return domain.Served{Provider: sel.Provider, Model: sel.Model, Offline: sel.Offline()}
		},
		Snapshots: pipeline.StoredWorkspaces{Store: a.Store, Dir: a.WorkspaceDir},
		Logger:    logger,
	})
	var dispatcher tasks.Dispatcher = a.Executor
	if a.Queue != nil {
		dispatcher = a.Queue
	}
	a.Tasks = tasks.New(tasks.Options{Store: a.Store, Recorder: a.Recorder, Graphs: a.Graphs, Dispatcher: dispatcher,
		Limits: tasks.Limits{MaxQueuedPerUser: cfg.MaxQueuedTasksPerUser, UserBudgetUSD: cfg.UserBudgetUSD}})
	a.Explorer = explorer.New(explorer.Options{Store: a.Store, Tasks: a.Tasks, Sources: sources, Models: a.Models, Logger: logger})
	exploreSteps = a.Explorer.Steps()
	return a, nil
}

// Start starts running tasks in this process. recover: also resume the
// tasks nobody runs (a server); `catalyst run` runs only what it submits.
func (a *App) Start(ctx context.Context, recover bool) error {
	if a.Queue != nil && recover {
		return a.StartWorker(ctx)
	}
	a.Executor.SetRecover(recover)
	return a.Executor.Start(ctx)
}

// NewRouter builds the model router: the configured providers, else a local
// OpenAI-compatible server, else the offline provider.
func NewRouter(cfg *config.Config, logger *slog.Logger) (*llm.Router, error) {
	limits := make(map[string]llm.Limits, len(cfg.LLM.Limits))
	for provider, l := range cfg.LLM.Limits {
		tpm := l.TokensPerMinute
		if tpm == 0 && provider != "ollama" { // 0 keeps the default of hosted providers
			tpm = llm.DefaultTokensPerMinute
		}
		limits[provider] = llm.Limits{Concurrency: l.Concurrency, TokensPerMinute: tpm}
	}
	return llm.NewRouter(cfg.LLM, llm.RouterOptions{
		Offline:      offline.New(cfg.LLM.OfflineLatency),
		Providers:    providers.Factories(),
		Logger:       logger,
		AgentTimeout: cfg.AgentTimeout,
		Limits:       limits,
		// Zero fields keep the llm package's defaults.
		Retry: llm.RetryPolicy{
			MaxAttempts:   cfg.LLM.Retry.MaxAttempts,
			BaseDelay:     cfg.LLM.Retry.BaseDelay,
			MaxDelay:      cfg.LLM.Retry.MaxDelay,
			MaxRetryAfter: cfg.LLM.Retry.MaxRetryAfter,
		},
		Breaker: llm.BreakerPolicy{Threshold: cfg.LLM.Breaker.Failures, Cooldown: cfg.LLM.Breaker.Cooldown},
	})
}

// SubmitTask submits a build task of projectID as the local user.
func (a *App) SubmitTask(ctx context.Context, projectID, prompt string) (domain.Task, error) {
	return a.Tasks.Submit(ctx, tasks.Local(), tasks.Submission{ProjectID: projectID, Prompt: prompt})
}

// WorkspaceDir is where a task's generated files (and git repository) live.
func (a *App) WorkspaceDir(taskID string) string {
	return filepath.Join(a.Config.DataDir, "tasks", taskID, "workspace")
}

// servedWorkspace is the directory the API serves a task's files, zip and
// preview from. Run in this process (the embedded default), that is its
// workspace; scaled out, the task may run on any worker, so API nodes
// serve the latest completed node's tree from the store, unpacked once
// into a cache and kept while it is the latest.
func (a *App) servedWorkspace(taskID string) string {
	local := a.WorkspaceDir(taskID)
	if a.snapshotCache == nil {
		return local
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := a.snapshotCache.Acquire(ctx, taskID)
	if err != nil {
		if !errors.Is(err, domain.ErrNotFound) {
			a.Logger.Warn("serving a task's stored workspace", "task", taskID, "err", err)
		}
		return local
	}
	// Held for a while so that a request in flight keeps its copy even if
	// a newer snapshot supersedes it meanwhile.
	time.AfterFunc(time.Minute, c.Release)
	return c.Dir
}

// Handler returns the HTTP API with the embedded dashboard. It needs
// Config.APIToken (see EnsureAPIToken).
func (a *App) Handler() (http.Handler, error) {
	opts, err := a.apiOptions()
	if err != nil {
		return nil, err
	}
	return api.New(opts)
}

// PreviewHandler returns the server of the previews' own origin
// (CATALYST_PREVIEW_URL).
func (a *App) PreviewHandler() (http.Handler, error) {
	opts, err := a.apiOptions()
	if err != nil {
		return nil, err
	}
	return api.NewPreview(opts)
}

func (a *App) apiOptions() (api.Options, error) {
	if a.NATS != nil && a.snapshotCache == nil {
		m, err := workspace.NewMaterializer(a.Store, filepath.Join(a.Config.DataDir, "cache", "workspaces"))
		if err != nil {
			return api.Options{}, err
		}
		a.snapshotCache = m
	}
	c := a.Config
	return api.Options{
		Settings: api.Settings{
			APIToken: c.APIToken, PublicURL: c.PublicURL, PreviewURL: c.PreviewURL,
			AllowedHosts: c.AllowedHosts, BindAddress: c.BindAddress, CORSOrigins: c.CORSOrigins,
			MaxBodyBytes: c.MaxBodyBytes, WebSocketPingInterval: c.WebSocketPingInterval,
			SessionTimeout: c.SessionTimeout, EnableMetrics: c.EnableMetrics,
			RateLimit: c.RateLimit, LoginRateLimit: c.LoginRateLimit, TrustedProxies: c.TrustedProxies,
		},
		Store:        a.Store,
		Broker:       a.Bus,
		NATS:         a.natsHealth(),
		Tasks:        a.Tasks,
		Explorer:     a.Explorer,
		Running:      a.Executor.Running,
		WorkspaceDir: a.servedWorkspace,
		UI:           web.Assets(),
		Logger:       a.Logger,
		Version:      Version,
		Accounts:     a.Accounts,
		Audit:        a.Audit,
		RateLimited:  a.auditRateLimited,
	}, nil
}

// auditRateLimited records each request a rate limit refused, so that a
// brute-force run against sign-in shows in the audit log (who was named,
// from where, how many failures), not only in the server's log.
func (a *App) auditRateLimited(r *http.Request, ev ratelimit.Event) {
	if a.Audit == nil {
		return
	}
	detail := fmt.Sprintf("%s limit; retry after %s", ev.Scope, ev.RetryAfter.Round(time.Second))
	if ev.Failures > 0 {
		detail += fmt.Sprintf("; %d failed attempts in a row", ev.Failures)
	}
	if ev.Email != "" {
		detail += "; e-mail " + ev.Email
	}
	a.Audit.Record(r.Context(), domain.AuditEntry{
		ActorID: ev.User, ActorKind: "client", Action: "rate_limited", ResourceType: "route", ResourceID: ev.Route,
		RemoteAddr: ev.Client, UserAgent: r.UserAgent(), Result: domain.AuditDenied, Status: http.StatusTooManyRequests,
		Detail: detail,
	})
}

// EnsureAPIToken fills cfg.APIToken for a server: CATALYST_API_TOKEN when
// set, else the token kept in the data directory, generated at first start.
// Call it before New, so that logs and events are scrubbed of it too. In
// production it refuses a configuration a server must not start with.
func EnsureAPIToken(cfg *config.Config) (created bool, err error) {
	if err := cfg.CheckServe(); err != nil {
		return false, err
	}
	if cfg.APIToken != "" {
		return false, nil
	}
	cfg.APIToken, created, err = api.LoadOrCreateToken(cfg.DataDir)
	return created, err
}

// Close stops the executor (running tasks stay "running" in the store and
// resume at the next start) and closes the store.
func (a *App) Close(ctx context.Context) error {
	var errs []error
	if a.Worker != nil {
		// Before NATS closes: its tasks go back to the queue at once.
		errs = append(errs, a.Worker.Stop(ctx))
	}
	if a.Executor != nil {
		errs = append(errs, a.Executor.Shutdown(ctx))
	}
	a.closeNATS()
	if a.Store != nil {
		errs = append(errs, a.Store.Close())
	}
	// Last: the spans of the nodes stopped above are exported too.
	errs = append(errs, a.Telemetry.Shutdown(ctx))
	return errors.Join(errs...)
}

// previewBase is the origin deployments link to: CATALYST_PREVIEW_URL, or
// the public URL when none is set.
func previewBase(cfg *config.Config) string {
	if cfg.PreviewURL != "" {
		return cfg.PreviewURL
	}
	return cfg.PublicURL
}

// explorerSources builds the Explorer's connectors. Every one reaches the
// network through one policy: URLs users type must not reach loopback,
// link-local or private addresses unless CATALYST_EXPLORER_ALLOW_PRIVATE.
func explorerSources(cfg *config.Config) ([]connector.Source, error) {
	policy := netpolicy.New(netpolicy.Options{AllowPrivate: cfg.ExplorerAllowPrivate})
	gh, err := github.New(cfg.GitHubToken, github.WithHTTPClient(policy.HTTPClient(30*time.Second)))
	if err != nil {
		return nil, fmt.Errorf("GitHub client for the Explorer: %w", err)
	}
	// Jira and ServiceNow answer connector.ErrSkip (listed as skipped)
	// when their variables are not set.
	return []connector.Source{
		gitsource.New(gitsource.Options{Policy: policy}),
		github.NewSource(gh),
		jira.New(jira.Options{BaseURL: cfg.JiraURL, Username: cfg.JiraUsername, APIToken: cfg.JiraAPIToken,
			HTTP: policy.HTTPClient(30 * time.Second)}),
		servicenow.New(servicenow.Options{BaseURL: cfg.ServiceNowURL, Username: cfg.ServiceNowUsername,
			Password: cfg.ServiceNowPassword, HTTP: policy.HTTPClient(30 * time.Second)}),
	}, nil
}
