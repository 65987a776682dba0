package api

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
)

// registerOperations declares every REST operation once: route, OpenAPI
// description, validation and handler.
func (s *server) registerOperations(api huma.API) {
	s.registerMeta(api)
	s.registerProjects(api)
	s.registerTasks(api)
	s.registerExplorer(api)
	s.registerAudit(api)
	if s.accounts != nil {
		s.registerAccounts(api)
	}
}

// op returns an operation with the body limit of the configuration.
func (s *server) op(method, path, id, summary string, tags ...string) huma.Operation {
	return huma.Operation{
		OperationID:  id,
		Method:       method,
		Path:         path,
		Summary:      summary,
		Tags:         tags,
		MaxBodyBytes: s.cfg.MaxBodyBytes,
	}
}

// withErrors documents the error statuses an operation may answer with.
func withErrors(o huma.Operation, statuses ...int) huma.Operation {
	o.Errors = statuses
	return o
}

type infoBody struct {
	Name      string `json:"name" example:"Catalyst"`
	Message   string `json:"message"`
	Version   string `json:"version"`
	Docs      string `json:"docs" doc:"Swagger UI"`
	Redoc     string `json:"redoc" doc:"ReDoc"`
	OpenAPI   string `json:"openapi" doc:"OpenAPI 3.1 document"`
	Health    string `json:"health"`
	WebSocket string `json:"websocket" doc:"Realtime task events (replace {task_id})"`
}

type infoOutput struct{ Body infoBody }

type healthBody struct {
	Status  string `json:"status" example:"ok"`
	Store   string `json:"store" example:"ok"`
	NATS    string `json:"nats,omitempty" example:"ok" doc:"present when NATS_URL is set"`
	Version string `json:"version"`
}

type healthOutput struct{ Body healthBody }

func (s *server) registerMeta(api huma.API) {
	huma.Register(api, s.op(http.MethodGet, "/api/", "get-info", "API info", "meta"),
		func(ctx context.Context, _ *struct{}) (*infoOutput, error) {
			return &infoOutput{Body: infoBody{
				Name:      "Catalyst",
				Message:   "Catalyst API",
				Version:   s.version,
				Docs:      "/docs",
				Redoc:     "/redoc",
				OpenAPI:   "/openapi.json",
				Health:    "/api/health",
				WebSocket: "/ws/{task_id}",
			}}, nil
		})

	huma.Register(api, withErrors(s.op(http.MethodGet, "/api/health", "get-health", "Health check: the store (and NATS, when used) answers", "meta"), 503),
		func(ctx context.Context, _ *struct{}) (*healthOutput, error) {
			ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			if err := s.store.Ping(ctx); err != nil {
				return nil, newProblem(http.StatusServiceUnavailable, "store unavailable: "+err.Error())
			}
			body := healthBody{Status: "ok", Store: "ok", Version: s.version}
			if s.nats != nil {
				if err := s.nats(); err != nil {
					return nil, newProblem(http.StatusServiceUnavailable, "nats unavailable: "+err.Error())
				}
				body.NATS = "ok"
			}
			return &healthOutput{Body: body}, nil
		})
}
