package ratelimit

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestKeyedBurstThenRefill(t *testing.T) {
	c := newClock()
	k := NewKeyed(KeyedOptions{PerMinute: 3, Max: 10, Now: c.Now})
	for i := range 3 {
		if ok, _ := k.Allow("a"); !ok {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	ok, wait := k.Allow("a")
	if ok || wait != 20*time.Second {
		t.Fatalf("4th request: ok=%v wait=%v, want refused for 20s (one token per 20 s)", ok, wait)
	}
	if ok, _ := k.Allow("b"); !ok {
		t.Fatal("another key shares a's bucket")
	}
	c.Advance(20 * time.Second)
	if ok, _ := k.Allow("a"); !ok {
		t.Fatal("a token did not come back after 20 s")
	}
	if ok, _ := k.Allow("a"); ok {
		t.Fatal("a refused request must not have taken a token it was refused, but the next must wait again")
	}
}

// An attacker rotating keys (addresses, e-mails) must not grow memory.
func TestKeyedMemoryIsBounded(t *testing.T) {
	c := newClock()
	k := NewKeyed(KeyedOptions{PerMinute: 5, Max: 1000, MaxPenalty: time.Minute, Now: c.Now})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range 200000 {
		k.Allow("attacker-" + strconv.Itoa(i))
		k.Fail("attacker-" + strconv.Itoa(i))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if n := k.Len(); n != 1000 {
		t.Fatalf("keys held after 200000 distinct keys: %d, want the bound 1000", n)
	}
	if got := k.Evicted(); got != 199000 {
		t.Fatalf("evicted %d, want 199000", got)
	}
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 4<<20 {
		t.Fatalf("heap grew by %d bytes for a 1000-key limiter", grown)
	}
	// Idle keys are forgotten without waiting for the bound.
	c.Advance(3 * time.Minute)
	k.Allow("newcomer")
	if n := k.Len(); n != 1 {
		t.Fatalf("keys held after every other key idled out: %d, want 1", n)
	}
}

func TestKeyedGrowingDelay(t *testing.T) {
	c := newClock()
	k := NewKeyed(KeyedOptions{PerMinute: 5, Max: 10, MaxPenalty: 15 * time.Minute, Now: c.Now})
	for i := range 5 {
		if d := k.Fail("x"); d != 0 {
			t.Fatalf("failure %d within the allowance already delays %v", i+1, d)
		}
	}
	var got []time.Duration
	for range 10 {
		got = append(got, k.Fail("x"))
	}
	want := []time.Duration{12 * time.Second, 24 * time.Second, 48 * time.Second, 96 * time.Second, 192 * time.Second,
		384 * time.Second, 768 * time.Second, 15 * time.Minute, 15 * time.Minute, 15 * time.Minute}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("growing delays %v, want %v", got, want)
	}
	if ok, wait := k.Allow("x"); ok || wait != 15*time.Minute {
		t.Fatalf("a key serving a delay: ok=%v wait=%v", ok, wait)
	}
	k.Succeed("x")
	if ok, _ := k.Allow("x"); !ok {
		t.Fatal("a success did not lift the delay")
	}
	for range 100 {
		if d := k.Fail("y"); d < 0 || d > 15*time.Minute {
			t.Fatalf("delay %v out of bounds (overflow?)", d)
		}
	}
}

func mustProxies(t *testing.T, s string) []netip.Prefix {
	t.Helper()
	p, err := ParseProxies(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestClientAddr(t *testing.T) {
	proxies := mustProxies(t, "10.0.0.1, 192.168.0.0/16")
	cases := []struct {
		name, remote string
		xff          []string
		proxies      []netip.Prefix
		want         string
	}{
		{"no proxies configured: the header is ignored", "203.0.113.9:5555", []string{"1.2.3.4"}, nil, "203.0.113.9"},
		{"untrusted peer cannot claim another address", "203.0.113.9:5555", []string{"1.2.3.4"}, proxies, "203.0.113.9"},
		{"trusted proxy: the address it saw", "10.0.0.1:80", []string{"198.51.100.7"}, proxies, "198.51.100.7"},
		{"client-written entries left of the real one are ignored", "10.0.0.1:80", []string{"1.1.1.1, 2.2.2.2, 198.51.100.7"}, proxies, "198.51.100.7"},
		{"a chain of trusted proxies is walked", "10.0.0.1:80", []string{"198.51.100.7, 192.168.3.4"}, proxies, "198.51.100.7"},
		{"several header lines", "10.0.0.1:80", []string{"6.6.6.6", "198.51.100.7, 192.168.3.4"}, proxies, "198.51.100.7"},
		{"garbage stops at the last trusted hop", "10.0.0.1:80", []string{"evil, 192.168.3.4"}, proxies, "192.168.3.4"},
		{"only proxies: the leftmost", "10.0.0.1:80", []string{"192.168.1.1"}, proxies, "192.168.1.1"},
		{"ipv4-mapped ipv6 peer", "[::ffff:10.0.0.1]:80", []string{"198.51.100.7"}, proxies, "198.51.100.7"},
		{"ipv6 client", "[2001:db8::1]:443", nil, nil, "2001:db8::1"},
	}
	for _, tc := range cases {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.remote
		for _, v := range tc.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := ClientAddr(r, tc.proxies).String(); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, got, tc.want)
		}
	}
	// One IPv6 host owns a /64; each of its addresses is the same client.
	a, b := netip.MustParseAddr("2001:db8:1:2::1"), netip.MustParseAddr("2001:db8:1:2:ffff::9")
	if ClientKey(a) != ClientKey(b) || ClientKey(a) == ClientKey(netip.MustParseAddr("2001:db8:1:3::1")) {
		t.Fatalf("IPv6 keys: %s %s", ClientKey(a), ClientKey(b))
	}
	if _, err := ParseProxies("10.0.0.1, not-an-ip"); err == nil || !strings.Contains(err.Error(), "not-an-ip") {
		t.Fatalf("bad proxy list: %v", err)
	}
}

// server runs the limiter in front of a handler on a real listener whose
// peer (127.0.0.1) is a trusted proxy, so tests pick client addresses with
// X-Forwarded-For.
type server struct {
	*httptest.Server
	mu      sync.Mutex
	events  []Event
	reached int
}

func newServer(t *testing.T, o Options, user func(*http.Request) string) *server {
	s := &server{}
	o.TrustedProxies = mustProxies(t, "127.0.0.1, ::1")
	o.OnLimited = func(_ *http.Request, ev Event) {
		s.mu.Lock()
		s.events = append(s.events, ev)
		s.mu.Unlock()
	}
	l, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.reached++
		s.mu.Unlock()
		if strings.HasPrefix(r.URL.Path, "/api/auth/") {
			var body struct{ Email, Password string }
			if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
				http.Error(w, "body lost: "+err.Error(), http.StatusBadRequest)
				return
			}
			if body.Password != "right" {
				http.Error(w, "wrong", http.StatusUnauthorized)
				return
			}
		}
		w.WriteHeader(http.StatusOK)
	})
	if user == nil {
		user = func(*http.Request) string { return "" }
	}
	s.Server = httptest.NewServer(l.Clients(l.Users(user, app)))
	t.Cleanup(s.Close)
	return s
}

func (s *server) do(t *testing.T, method, path, client, body string, hdr ...string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	req.Header.Set("X-Forwarded-For", client)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func TestPerClientLimitAnswers429WithRetryAfter(t *testing.T) {
	c := newClock()
	s := newServer(t, Options{PerMinute: 10, Now: c.Now}, nil)
	for i := range 10 {
		if r := s.do(t, "GET", "/api/projects", "198.51.100.1", ""); r.StatusCode != 200 {
			t.Fatalf("request %d: %d", i+1, r.StatusCode)
		}
	}
	req, _ := http.NewRequest("GET", s.URL+"/api/projects", nil)
	req.Header.Set("X-Forwarded-For", "198.51.100.1")
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var prob struct {
		Status int    `json:"status"`
		Detail string `json:"detail"`
	}
	json.NewDecoder(resp.Body).Decode(&prob)
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "6" ||
		resp.Header.Get("Content-Type") != "application/problem+json" || prob.Status != 429 || !strings.Contains(prob.Detail, "client") {
		t.Fatalf("11th request: %d Retry-After=%q %q %+v", resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("Content-Type"), prob)
	}
	if r := s.do(t, "GET", "/api/projects", "198.51.100.2", ""); r.StatusCode != 200 {
		t.Fatalf("another client was limited: %d", r.StatusCode)
	}
	// Spoofing X-Forwarded-For through the trusted proxy does not help:
	// the proxy appends the real address, which is the one read.
	if r := s.do(t, "GET", "/api/projects", "1.2.3.4, 198.51.100.1", ""); r.StatusCode != 429 {
		t.Fatalf("spoofed X-Forwarded-For escaped the limit: %d", r.StatusCode)
	}
	// The uptime check of a client whose dashboard spent its allowance
	// still answers; probes have buckets of their own, limited alike.
	for i := range 10 {
		if r := s.do(t, "GET", "/api/health", "198.51.100.1", ""); r.StatusCode != 200 {
			t.Fatalf("health %d while the client is limited: %d", i+1, r.StatusCode)
		}
	}
	if r := s.do(t, "GET", "/api/health", "198.51.100.1", ""); r.StatusCode != 429 {
		t.Fatalf("health flood not limited: %d", r.StatusCode)
	}
	c.Advance(6 * time.Second)
	if r := s.do(t, "GET", "/api/projects", "198.51.100.1", ""); r.StatusCode != 200 {
		t.Fatalf("after Retry-After: %d", r.StatusCode)
	}
	if s.reached != 22 || len(s.events) != 3 || s.events[0].Scope != ScopeClient || s.events[0].Client != "198.51.100.1" {
		t.Fatalf("reached %d, events %+v", s.reached, s.events)
	}
}

func TestPerUserLimitAcrossClients(t *testing.T) {
	c := newClock()
	s := newServer(t, Options{PerMinute: 5, Now: c.Now}, func(r *http.Request) string { return r.Header.Get("X-Test-User") })
	for i := range 5 {
		if r := s.do(t, "GET", "/api/tasks", fmt.Sprintf("198.51.100.%d", i+1), "", "X-Test-User", "u1"); r.StatusCode != 200 {
			t.Fatalf("request %d: %d", i+1, r.StatusCode)
		}
	}
	// A sixth address does not give the same user a new allowance.
	if r := s.do(t, "GET", "/api/tasks", "198.51.100.99", "", "X-Test-User", "u1"); r.StatusCode != 429 {
		t.Fatalf("user over the limit from a fresh address: %d", r.StatusCode)
	}
	if r := s.do(t, "GET", "/api/tasks", "198.51.100.99", "", "X-Test-User", "u2"); r.StatusCode != 200 {
		t.Fatalf("another user was limited: %d", r.StatusCode)
	}
	if ev := s.events[len(s.events)-1]; ev.Scope != ScopeUser || ev.User != "u1" {
		t.Fatalf("event %+v", ev)
	}
}

// A brute-force run against one account: slowed to a crawl, each refused
// attempt reported, and the body still reaches the handler intact.
func TestLoginBruteForceIsSlowedAndReported(t *testing.T) {
	c := newClock()
	s := newServer(t, Options{PerMinute: 1000, LoginPerMinute: 5, Now: c.Now}, nil)
	attempt := func(client, email, password string) *http.Response {
		return s.do(t, "POST", "/api/auth/login", client, fmt.Sprintf(`{"email":%q,"password":%q}`, email, password),
			"Content-Type", "application/json")
	}
	// An hour of one guess per second from one address.
	var reached, refused int
	var waits []int
	for range 3600 {
		before := s.reached
		r := attempt("203.0.113.5", "victim@example.com", "guess")
		switch r.StatusCode {
		case 401:
		case 429:
			refused++
			n, _ := strconv.Atoi(r.Header.Get("Retry-After"))
			if len(waits) == 0 || waits[len(waits)-1] != n {
				waits = append(waits, n)
			}
		default:
			t.Fatalf("status %d", r.StatusCode)
		}
		reached += s.reached - before
		c.Advance(time.Second)
	}
	// Unlimited, 3600 guesses; at 5/min, 300; with growing delays far fewer.
	if reached > 25 {
		t.Fatalf("%d guesses reached the handler in an hour", reached)
	}
	if len(s.events) != refused || refused < 3500 {
		t.Fatalf("%d refused, %d events", refused, len(s.events))
	}
	ev := s.events[len(s.events)-1]
	if ev.Email != "victim@example.com" || ev.Client != "203.0.113.5" || ev.Route != "POST /api/auth/login" || ev.Failures < 10 {
		t.Fatalf("last event %+v", ev)
	}
	if waits[len(waits)-1] < 600 {
		t.Fatalf("Retry-After did not grow: %v", waits)
	}

	// The same account from a fresh address each time (a botnet): the
	// e-mail address's own bucket and delays apply.
	for i := range 20 {
		attempt(fmt.Sprintf("198.51.100.%d", i+1), "Victim@Example.com ", "guess")
	}
	last := s.events[len(s.events)-1]
	if last.Scope != ScopeTarget || last.Email != "Victim@Example.com " {
		t.Fatalf("rotating addresses against one account: %+v", last)
	}
	// Another account from a clean address signs in fine, and a success
	// clears the account's failures.
	if r := attempt("192.0.2.77", "other@example.com", "right"); r.StatusCode != 200 {
		t.Fatalf("unrelated sign-in: %d", r.StatusCode)
	}
}

func TestRegisterIsLimitedAndBodyPreserved(t *testing.T) {
	c := newClock()
	s := newServer(t, Options{LoginPerMinute: 2, Now: c.Now}, nil)
	big := `{"email":"a@example.com","password":"right","pad":"` + strings.Repeat("x", 100<<10) + `"}`
	for i := range 2 {
		if r := s.do(t, "POST", "/api/auth/register", "198.51.100.1", big, "Content-Type", "application/json"); r.StatusCode != 200 {
			t.Fatalf("register %d with a body beyond the peek: %d", i+1, r.StatusCode)
		}
	}
	if r := s.do(t, "POST", "/api/auth/register", "198.51.100.1", big, "Content-Type", "application/json"); r.StatusCode != 429 {
		t.Fatalf("3rd register: %d", r.StatusCode)
	}
	// Path tricks reach the same route and the same limit.
	if r := s.do(t, "POST", "/api/auth/./register", "198.51.100.1", big); r.StatusCode != 429 {
		t.Fatalf("unclean path: %d", r.StatusCode)
	}
	// Ordinary routes are not under the sign-in limit, and with
	// PerMinute 0 not limited at all.
	for range 20 {
		if r := s.do(t, "GET", "/api/health", "198.51.100.1", ""); r.StatusCode != 200 {
			t.Fatalf("health: %d", r.StatusCode)
		}
	}
}
