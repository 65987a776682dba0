// Command catalyst is the whole platform in one binary: the API and
// dashboard server, the terminal runner, and configuration tools.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/catalyst/catalyst/internal/app"
	"github.com/catalyst/catalyst/internal/config"
	"github.com/catalyst/catalyst/internal/logging"
)

const usage = `Catalyst — a multi-agent software-development platform.

Usage:
  catalyst serve [flags]          run the API, WebSocket streams and dashboard (default port 8001)
  catalyst worker [flags]         run tasks from the NATS JetStream work queue (needs NATS_URL and MONGO_URL)
  catalyst run [flags] "PROMPT"   run one task through the agent graph in the terminal
  catalyst explore --repo URL [--jira KEY] [--servicenow CI] [--github owner/name]
                                  scan an existing system into a brief, risks with evidence and proposals
  catalyst llm ping [--agent A]   show which model would be used and make one tiny call
  catalyst config env [flags]     generate .env, backend/.env and frontend/.env from config.yaml
  catalyst config print           print the effective configuration, secrets redacted
  catalyst health [--addr H:P]    exit 0 when the local API node's /api/health answers 200
  catalyst user create --email E [--admin] [--name N]
                                  create a user; the password is read from standard input
  catalyst version                print the version

Configuration comes from built-in defaults < config.yaml < backend/.env < the
environment; see README.md for every variable.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches a subcommand and returns the process exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var err error
	switch args[0] {
	case "serve":
		err = cmdServe(ctx, args[1:], stdout, stderr)
	case "worker":
		err = cmdWorker(ctx, args[1:], stdout, stderr)
	case "run":
		return cmdRun(ctx, args[1:], stdout, stderr)
	case "explore":
		return cmdExplore(ctx, args[1:], stdout, stderr)
	case "llm":
		err = cmdLLM(ctx, args[1:], stdout, stderr)
	case "config":
		err = cmdConfig(args[1:], stdout, stderr)
	case "health":
		err = cmdHealth(ctx, args[1:], stdout, stderr)
	case "user":
		err = cmdUser(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "catalyst", app.Version)
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "catalyst: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "catalyst:", err)
		return 1
	}
	return 0
}

// sourceFlags adds the flags that choose configuration files.
func sourceFlags(fs *flag.FlagSet) *config.Sources {
	var src config.Sources
	fs.StringVar(&src.YAMLFile, "config", "", "config.yaml path (default ./config.yaml when present)")
	fs.StringVar(&src.DotEnvFile, "env-file", "", "dotenv path (default ./backend/.env or ./.env when present)")
	return &src
}

// load reads the configuration and builds a logger that scrubs its secrets.
func load(src config.Sources) (*config.Config, error) {
	cfg, err := config.Load(src)
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

func cmdConfig(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("config: want a subcommand: env or print")
	}
	switch args[0] {
	case "env":
		fs := flag.NewFlagSet("config env", flag.ContinueOnError)
		fs.SetOutput(stderr)
		yamlPath := fs.String("config", "config.yaml", "config.yaml to read")
		out := fs.String("out", ".", "directory to write .env, backend/.env and frontend/.env under")
		force := fs.Bool("force", false, "overwrite existing files")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		files, err := config.EnvFiles(*yamlPath)
		if err != nil {
			return err
		}
		if err := config.WriteEnvFiles(*out, files, *force); err != nil {
			return err
		}
		for _, f := range files {
			fmt.Fprintf(stdout, "wrote %s (mode 0600)\n", f.Path)
		}
		return nil
	case "print":
		fs := flag.NewFlagSet("config print", flag.ContinueOnError)
		fs.SetOutput(stderr)
		src := sourceFlags(fs)
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		rows, err := config.Redacted(*src)
		if err != nil {
			return err
		}
		for _, r := range rows {
			fmt.Fprintf(stdout, "%s=%s\n", r[0], r[1])
		}
		return nil
	}
	return fmt.Errorf("config: unknown subcommand %q (want env or print)", args[0])
}

func cmdLLM(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "ping" {
		return fmt.Errorf("llm: want the subcommand ping")
	}
	fs := flag.NewFlagSet("llm ping", flag.ContinueOnError)
	fs.SetOutput(stderr)
	src := sourceFlags(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cfg, err := load(*src)
	if err != nil {
		return err
	}
	logger := newLogger(stderr, cfg.LogLevel, cfg)
	models, err := app.NewRouter(cfg, logger)
	if err != nil {
		return err
	}
	return pingModels(ctx, models, stdout)
}

// newLogger logs at level, scrubbing the configuration's secrets and, with
// ENABLE_PII_REDACTION, personal data.
func newLogger(w io.Writer, level string, cfg *config.Config) *slog.Logger {
	return logging.NewWith(w, level, logging.NewRedactor(cfg.Secrets()).WithPII(cfg.EnablePIIRedaction))
}
