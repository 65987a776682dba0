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

	"github.com/catalyst/catalyst/internal/agent"
	"github.com/catalyst/catalyst/internal/api"
	"github.com/catalyst/catalyst/internal/config"
	"github.com/catalyst/catalyst/internal/connector/github"
	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/events"
	"github.com/catalyst/catalyst/internal/graph"
	"github.com/catalyst/catalyst/internal/llm"
	"github.com/catalyst/catalyst/internal/llm/offline"
	"github.com/catalyst/catalyst/internal/llm/providers"
	"github.com/catalyst/catalyst/internal/logging"
	"github.com/catalyst/catalyst/internal/pipeline"
	"github.com/catalyst/catalyst/internal/sandbox"
	"github.com/catalyst/catalyst/internal/store"
	"github.com/catalyst/catalyst/internal/store/mongo"
	"github.com/catalyst/catalyst/internal/store/sqlite"
	"github.com/catalyst/catalyst/internal/tasks"
	"github.com/catalyst/catalyst/web"
)

// Version is set at build time with -ldflags "-X .../internal/app.Version=...".
var Version = "dev"

// App is a wired Catalyst instance.
type App struct {
	Config   *config.Config
	Logger   *slog.Logger
	Store    store.Store
	Broker   *events.Broker
	Recorder *events.Recorder
	Models   *llm.Router
	Executor *pipeline.Executor
	// Tasks is the use-case layer every front end goes through.
	Tasks  *tasks.Service
	Graphs *graph.Registry
	// StoreKind describes the store in use ("sqlite <path>" or "mongodb <db>").
	StoreKind string
}

// New opens the store and builds every part; Close releases them.
func New(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*App, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data directory %s: %w", cfg.DataDir, err)
	}
	a := &App{Config: cfg, Logger: logger}
	var err error
	if cfg.MongoURL != "" {
		openCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		a.Store, err = mongo.Open(openCtx, cfg.MongoURL, cfg.DBName)
		cancel()
		a.StoreKind = "mongodb database " + cfg.DBName
	} else {
		path := filepath.Join(cfg.DataDir, "catalyst.db")
		a.Store, err = sqlite.Open(ctx, path)
		a.StoreKind = "sqlite " + path
	}
	if err != nil {
		return nil, fmt.Errorf("opening store: %w", err)
	}

	redactor := logging.NewRedactor(cfg.Secrets()).WithPII(cfg.EnablePIIRedaction)
	a.Broker = events.NewBroker()
	a.Recorder = &events.Recorder{Store: a.Store, Broker: a.Broker, Redact: redactor.Redact}

	a.Models, err = NewRouter(cfg, logger)
	if err != nil {
		a.Store.Close()
		return nil, fmt.Errorf("LLM configuration: %w", err)
	}

	// Generated code must not see the database or other tasks' workspaces.
	if abs, err := filepath.Abs(cfg.DataDir); err == nil {
		sandbox.HiddenPaths = appendOnce(sandbox.HiddenPaths, abs)
	}
	var publisher agent.PullRequests
	if cfg.GitHubToken != "" && !cfg.MockDeployment {
		client, err := github.New(cfg.GitHubToken)
		if err != nil {
			a.Store.Close()
			return nil, fmt.Errorf("GitHub client: %w", err)
		}
		publisher = github.NewPublisher(client)
	}

	a.Graphs = graph.Builtin()
	buildSteps := agent.Steps(agent.Deps{
		Models:       a.Models,
		Store:        a.Store,
		Config:       *cfg,
		WorkspaceDir: a.WorkspaceDir,
		GitHub:       publisher,
	})
	a.Executor = pipeline.New(pipeline.Options{
		Store:    a.Store,
		Recorder: a.Recorder,
		Graphs:   a.Graphs,
		Steps: func(kind string) map[string]agent.Step {
			if kind == domain.KindBuild {
				return buildSteps
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
		Logger: logger,
	})
	a.Tasks = tasks.New(tasks.Options{Store: a.Store, Recorder: a.Recorder, Graphs: a.Graphs, Dispatcher: a.Executor})
	return a, nil
}

// Start starts running tasks in this process. recover: also resume the
// tasks nobody runs (a server); `catalyst run` runs only what it submits.
func (a *App) Start(ctx context.Context, recover bool) error {
	a.Executor.SetRecover(recover)
	return a.Executor.Start(ctx)
}

func appendOnce(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
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

// Handler returns the HTTP API with the embedded dashboard.
func (a *App) Handler() (http.Handler, error) {
	return api.New(api.Options{
		Config:       a.Config,
		Store:        a.Store,
		Broker:       a.Broker,
		Tasks:        a.Tasks,
		Running:      a.Executor.Running,
		WorkspaceDir: a.WorkspaceDir,
		UI:           web.Assets(),
		Logger:       a.Logger,
		Version:      Version,
	})
}

// Close stops the executor (running tasks stay "running" in the store and
// resume at the next start) and closes the store.
func (a *App) Close(ctx context.Context) error {
	var errs []error
	if a.Executor != nil {
		errs = append(errs, a.Executor.Shutdown(ctx))
	}
	if a.Store != nil {
		errs = append(errs, a.Store.Close())
	}
	return errors.Join(errs...)
}
