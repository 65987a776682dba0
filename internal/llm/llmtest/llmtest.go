// Package llmtest has the fake HTTP server the provider tests share: it
// records each request (headers and decoded JSON body) and answers from a
// queue of canned replies written in the vendor's wire format.
package llmtest

import (
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"unicode/utf8"
)

// Step writes one reply.
type Step func(http.ResponseWriter)

// FakeAPI is an http.Handler that answers with Steps in order, repeating
// the last one.
type FakeAPI struct {
	mu     sync.Mutex
	Reqs   []*http.Request
	Bodies []map[string]any
	Steps  []Step
}

func (f *FakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var body map[string]any
	_ = json.Unmarshal(b, &body)
	f.mu.Lock()
	f.Reqs = append(f.Reqs, r)
	f.Bodies = append(f.Bodies, body)
	step := f.Steps[0]
	if len(f.Steps) > 1 {
		f.Steps = f.Steps[1:]
	}
	f.mu.Unlock()
	step(w)
}

// Reset forgets the recorded requests.
func (f *FakeAPI) Reset() {
	f.mu.Lock()
	f.Reqs, f.Bodies = f.Reqs[:0], f.Bodies[:0]
	f.mu.Unlock()
}

// Reply writes status, content type, extra headers (name, value pairs) and body.
func Reply(status int, ctype, body string, hdr ...string) Step {
	return func(w http.ResponseWriter) {
		for i := 0; i+1 < len(hdr); i += 2 {
			w.Header().Set(hdr[i], hdr[i+1])
		}
		w.Header().Set("Content-Type", ctype)
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// JSON is Reply with application/json.
func JSON(status int, body string, hdr ...string) Step {
	return Reply(status, "application/json", body, hdr...)
}

// SSE is a 200 text/event-stream reply.
func SSE(events string) Step {
	return Reply(http.StatusOK, "text/event-stream", events)
}

// Pieces cuts s into pieces of about n bytes, the way streams deliver tool
// arguments: anywhere, even inside a JSON string or an escape sequence, but
// not inside a UTF-8 character (each piece travels as a JSON string).
func Pieces(s string, n int) []string {
	var out []string
	for len(s) > n {
		i := n
		for i < len(s) && !utf8.RuneStart(s[i]) {
			i++
		}
		out = append(out, s[:i])
		s = s[i:]
	}
	return append(out, s)
}

// Quote is s as a JSON string literal, for building wire-format bodies.
func Quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// Recorded returns the i-th recorded request body (safe while serving).
func (f *FakeAPI) Recorded(i int) map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.Bodies[i]
}

// Count is the number of requests served so far.
func (f *FakeAPI) Count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.Reqs)
}
