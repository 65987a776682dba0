package api

import (
	"context"
	"fmt"
	"github.com/catalyst/catalyst/internal/tasks"
	"net/http"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// metrics counts what an operator watches. It is served at /metrics in the
// Prometheus text exposition format when ENABLE_METRICS is true (the guide's
// default), so any Prometheus-compatible scraper can read it without a
// client library in the binary.
type metrics struct {
	mu       sync.Mutex
	requests map[requestKey]*requestStats
	limited  map[string]uint64 // refused requests by rate-limit scope
}

// requestKey labels requests by method, route template and status. Never
// by path: paths carry ids (one series per task, and a client could grow
// the series without bound) and names of users' files.
type requestKey struct {
	method string
	route  string // "/api/tasks/{id}"; "unmatched" when no route served it
	code   int
}

type requestStats struct {
	count   uint64
	seconds float64
}

func newMetrics() *metrics {
	return &metrics{requests: make(map[requestKey]*requestStats), limited: make(map[string]uint64)}
}

// observe counts a request served by pattern (a route template of the mux,
// "" when none matched).
func (m *metrics) observe(method, pattern string, code int, d time.Duration) {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
	default:
		method = "other" // clients choose methods; keep the label set bounded
	}
	route := "unmatched"
	if pattern != "" {
		route = pattern
		if _, p, ok := strings.Cut(pattern, " "); ok {
			route = p // the method is a label of its own
		}
	}
	if code < 100 || code > 599 {
		code = 0
	}
	k := requestKey{method, route, code}
	m.mu.Lock()
	st := m.requests[k]
	if st == nil {
		st = &requestStats{}
		m.requests[k] = st
	}
	st.count++
	st.seconds += d.Seconds()
	m.mu.Unlock()
}

func (m *metrics) rateLimited(scope string) {
	m.mu.Lock()
	m.limited[scope]++
	m.mu.Unlock()
}

// loopbackScraper is who reads health and metrics from this machine
// without a credential (the operator's Prometheus): it may read the
// installation's figures and nothing of any tenant.
var loopbackScraper = tasks.Actor{Kind: "loopback", Name: "first-party loopback client"}

// handleMetrics serves GET /metrics. The figures are the installation's,
// not a tenant's (labels carry no ids, paths or users), so they are for
// admins and the operator's scraper on loopback, not for every user.
func (s *server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	if a := actor(r.Context()); !a.Admin && a != loopbackScraper {
		writeProblem(w, http.StatusForbidden, "metrics are the installation's and only admins read them")
		return
	}
	var b strings.Builder
	metric := func(name, kind, help string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, kind)
	}

	metric("catalyst_build_info", "gauge", "Version of the running binary.")
	fmt.Fprintf(&b, "catalyst_build_info{version=%q} 1\n", s.version)

	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	up := 1
	if err := s.store.Ping(ctx); err != nil {
		up = 0
	}
	cancel()
	metric("catalyst_store_up", "gauge", "1 when the store answers a ping.")
	fmt.Fprintf(&b, "catalyst_store_up %d\n", up)

	if s.running != nil {
		metric("catalyst_tasks_running", "gauge", "Tasks executing in this process.")
		fmt.Fprintf(&b, "catalyst_tasks_running %d\n", s.running())
	}

	dropped, evicted := s.broker.Stats()
	metric("catalyst_stream_subscribers", "gauge", "Live WebSocket and SSE subscribers.")
	fmt.Fprintf(&b, "catalyst_stream_subscribers %d\n", s.broker.TotalSubscribers())
	metric("catalyst_stream_token_deltas_dropped_total", "counter", "Token deltas dropped for subscribers whose buffer was full.")
	fmt.Fprintf(&b, "catalyst_stream_token_deltas_dropped_total %d\n", dropped)
	metric("catalyst_stream_subscribers_evicted_total", "counter", "Subscribers disconnected for being too slow.")
	fmt.Fprintf(&b, "catalyst_stream_subscribers_evicted_total %d\n", evicted)
	if nb, ok := s.broker.(interface {
		Lost() int64
		Rejected() int64
	}); ok {
		metric("catalyst_nats_events_lost_total", "counter", "Events not published on NATS (queue full or disconnected); followers read them from the store.")
		fmt.Fprintf(&b, "catalyst_nats_events_lost_total %d\n", nb.Lost())
		metric("catalyst_nats_events_rejected_total", "counter", "Malformed or foreign messages received on NATS event subjects and dropped.")
		fmt.Fprintf(&b, "catalyst_nats_events_rejected_total %d\n", nb.Rejected())
	}

	s.metrics.mu.Lock()
	keys := make([]requestKey, 0, len(s.metrics.requests))
	for k := range s.metrics.requests {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].method != keys[j].method {
			return keys[i].method < keys[j].method
		}
		if keys[i].route != keys[j].route {
			return keys[i].route < keys[j].route
		}
		return keys[i].code < keys[j].code
	})
	metric("catalyst_http_requests_total", "counter", "HTTP requests by method, route template and status.")
	for _, k := range keys {
		fmt.Fprintf(&b, "catalyst_http_requests_total{method=%q,route=%q,code=\"%d\"} %d\n", k.method, k.route, k.code, s.metrics.requests[k].count)
	}
	metric("catalyst_http_request_duration_seconds_total", "counter", "Time spent serving HTTP requests by method, route template and status.")
	for _, k := range keys {
		fmt.Fprintf(&b, "catalyst_http_request_duration_seconds_total{method=%q,route=%q,code=\"%d\"} %s\n", k.method, k.route, k.code,
			strconv.FormatFloat(s.metrics.requests[k].seconds, 'g', -1, 64))
	}
	scopes := make([]string, 0, len(s.metrics.limited))
	for sc := range s.metrics.limited {
		scopes = append(scopes, sc)
	}
	sort.Strings(scopes)
	metric("catalyst_http_rate_limited_total", "counter", "Requests refused with 429 by rate-limit scope (client, user, login, login_email).")
	for _, sc := range scopes {
		fmt.Fprintf(&b, "catalyst_http_rate_limited_total{scope=%q} %d\n", sc, s.metrics.limited[sc])
	}
	s.metrics.mu.Unlock()
	if s.limiter != nil {
		keys, evicted := s.limiter.Stats()
		metric("catalyst_rate_limit_keys", "gauge", "Client addresses, users and e-mail addresses the rate limits hold (bounded).")
		fmt.Fprintf(&b, "catalyst_rate_limit_keys %d\n", keys)
		metric("catalyst_rate_limit_evicted_total", "counter", "Rate-limit keys forgotten (idle, or the oldest at the bound).")
		fmt.Fprintf(&b, "catalyst_rate_limit_evicted_total %d\n", evicted)
	}

	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	metric("go_goroutines", "gauge", "Goroutines that currently exist.")
	fmt.Fprintf(&b, "go_goroutines %d\n", runtime.NumGoroutine())
	metric("go_memstats_heap_inuse_bytes", "gauge", "Heap bytes in use.")
	fmt.Fprintf(&b, "go_memstats_heap_inuse_bytes %d\n", ms.HeapInuse)

	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(b.String()))
}
