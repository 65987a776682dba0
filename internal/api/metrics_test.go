package api

import (
	"strings"
	"testing"

	"github.com/catalyst/catalyst/internal/events"
)

func TestMetricsInPrometheusTextFormat(t *testing.T) {
	e := newEnv(t, withConfig(func(c *Settings) { c.EnableMetrics = true }))
	e.must(200, "GET", "/api/", nil)
	e.do("GET", "/api/projects/does-not-exist", nil)
	sub := e.broker.Subscribe("some-task", 1)
	defer sub.Close()

	r := e.must(200, "GET", "/metrics", nil)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q", ct)
	}
	body := string(r.body)
	for _, want := range []string{
		`catalyst_build_info{version="test"} 1`,
		"catalyst_store_up 1",
		"# TYPE catalyst_http_requests_total counter",
		`catalyst_http_requests_total{method="GET",route="/api/",code="200"} 1`,
		`catalyst_http_requests_total{method="GET",route="/api/projects/{id}",code="404"} 1`,
		"catalyst_stream_subscribers 1",
		"catalyst_stream_subscribers_evicted_total 0",
		"go_goroutines ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}

	e.store.Close()
	if body := string(e.must(200, "GET", "/metrics", nil).body); !strings.Contains(body, "catalyst_store_up 0") {
		t.Errorf("store down not reported:\n%s", body)
	}
}

func TestMetricsOffWhenDisabled(t *testing.T) {
	e := newEnv(t, withConfig(func(c *Settings) { c.EnableMetrics = false }))
	r := e.do("GET", "/metrics", nil)
	if strings.Contains(string(r.body), "catalyst_http_requests_total") {
		t.Fatal("metrics served with ENABLE_METRICS=false")
	}
}

// lossyBus is a Bus that counts what NATS lost and refused, as natsbus does.
type lossyBus struct{ *events.Broker }

func (lossyBus) Lost() int64     { return 7 }
func (lossyBus) Rejected() int64 { return 3 }

func TestMetricsCountWhatTheNATSBusLostAndRefused(t *testing.T) {
	e := newEnv(t, withConfig(func(c *Settings) { c.EnableMetrics = true }),
		func(o *Options, _ *server) { o.Broker = lossyBus{events.NewBroker()} })
	body := string(e.must(200, "GET", "/metrics", nil).body)
	for _, want := range []string{"catalyst_nats_events_lost_total 7", "catalyst_nats_events_rejected_total 3"} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	plain := string(newEnv(t, withConfig(func(c *Settings) { c.EnableMetrics = true })).must(200, "GET", "/metrics", nil).body)
	if strings.Contains(plain, "catalyst_nats_") {
		t.Error("NATS counters shown without NATS")
	}
}
