// Package telemetrytest runs, in process, the two servers telemetry talks
// to: an OTLP/HTTP trace collector and a Sentry server speaking the
// envelope protocol. Tests point OTEL_EXPORTER_OTLP_ENDPOINT and SENTRY_DSN
// at them and inspect what really left the process, bytes included.
package telemetrytest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/proto"
)

// Span is one exported span, flattened.
type Span struct {
	Name                   string
	TraceID, SpanID        string
	ParentSpanID           string
	Kind                   string
	Attrs                  map[string]string
	StatusCode, StatusText string
	Resource               map[string]string
}

// Collector is an OTLP/HTTP (protobuf) trace collector.
type Collector struct {
	*httptest.Server
	mu    sync.Mutex
	spans []Span
	raw   bytes.Buffer
}

// NewCollector starts a collector, closed when t ends.
func NewCollector(t testing.TB) *Collector {
	c := &Collector{}
	c.Server = httptest.NewServer(http.HandlerFunc(c.serve))
	t.Cleanup(c.Close)
	return c
}

func (c *Collector) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "want POST /v1/traces application/x-protobuf", http.StatusBadRequest)
		return
	}
	body, err := readBody(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	c.raw.Write(body)
	for _, rs := range req.ResourceSpans {
		res := attrs(rs.GetResource().GetAttributes())
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				c.spans = append(c.spans, Span{
					Name: s.Name, TraceID: hex.EncodeToString(s.TraceId), SpanID: hex.EncodeToString(s.SpanId),
					ParentSpanID: hex.EncodeToString(s.ParentSpanId), Kind: s.Kind.String(),
					Attrs: attrs(s.Attributes), StatusCode: s.GetStatus().GetCode().String(),
					StatusText: s.GetStatus().GetMessage(), Resource: res,
				})
			}
		}
	}
	c.mu.Unlock()
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func attrs(kvs []*commonpb.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		v := kv.GetValue()
		switch x := v.GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.Key] = x.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.Key] = fmt.Sprint(x.IntValue)
		case *commonpb.AnyValue_DoubleValue:
			m[kv.Key] = fmt.Sprint(x.DoubleValue)
		case *commonpb.AnyValue_BoolValue:
			m[kv.Key] = fmt.Sprint(x.BoolValue)
		default:
			m[kv.Key] = v.String()
		}
	}
	return m
}

// Spans returns the spans received so far.
func (c *Collector) Spans() []Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Span(nil), c.spans...)
}

// Raw returns every request body received, concatenated: what a secret
// check must search.
func (c *Collector) Raw() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.raw.Bytes())
}

// Sentry is a Sentry server: POST /api/<project>/envelope/.
type Sentry struct {
	*httptest.Server
	mu     sync.Mutex
	events []map[string]any
	raw    bytes.Buffer
}

// NewSentry starts a Sentry server, closed when t ends.
func NewSentry(t testing.TB) *Sentry {
	s := &Sentry{}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

// DSN is the DSN of project 42 on this server.
func (s *Sentry) DSN() string {
	return strings.Replace(s.URL, "http://", "http://0123456789abcdef0123456789abcdef@", 1) + "/42"
}

func (s *Sentry) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/api/42/envelope/" {
		http.Error(w, "want POST /api/42/envelope/", http.StatusNotFound)
		return
	}
	body, err := readBody(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	events, err := ParseEnvelope(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.raw.Write(body)
	s.events = append(s.events, events...)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{}`))
}

// Events returns the error events received so far.
func (s *Sentry) Events() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]any(nil), s.events...)
}

// Raw returns every envelope received, concatenated.
func (s *Sentry) Raw() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.raw.Bytes())
}

// ParseEnvelope reads a Sentry envelope: a header line, then items, each an
// item header line and a payload of the header's length (or up to the
// next newline when it has none). It returns the "event" items.
func ParseEnvelope(b []byte) ([]map[string]any, error) {
	rd := bufio.NewReader(bytes.NewReader(b))
	line, err := rd.ReadBytes('\n')
	if err != nil && len(line) == 0 {
		return nil, fmt.Errorf("envelope without header: %w", err)
	}
	var hdr map[string]any
	if err := json.Unmarshal(line, &hdr); err != nil {
		return nil, fmt.Errorf("envelope header: %w", err)
	}
	var events []map[string]any
	for {
		line, err := rd.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) == 0 {
			if err == io.EOF {
				return events, nil
			}
			if err != nil {
				return nil, err
			}
			continue
		}
		var item struct {
			Type   string `json:"type"`
			Length *int   `json:"length"`
		}
		if err := json.Unmarshal(line, &item); err != nil {
			return nil, fmt.Errorf("item header %q: %w", line, err)
		}
		var payload []byte
		if item.Length != nil {
			payload = make([]byte, *item.Length)
			if _, err := io.ReadFull(rd, payload); err != nil {
				return nil, fmt.Errorf("item payload: %w", err)
			}
		} else {
			payload, _ = rd.ReadBytes('\n')
		}
		if item.Type == "event" {
			var ev map[string]any
			if err := json.Unmarshal(payload, &ev); err != nil {
				return nil, fmt.Errorf("event payload: %w", err)
			}
			events = append(events, ev)
		}
	}
}

func readBody(r *http.Request) ([]byte, error) {
	var rd io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		z, err := gzip.NewReader(r.Body)
		if err != nil {
			return nil, err
		}
		rd = z
	}
	return io.ReadAll(io.LimitReader(rd, 64<<20))
}
