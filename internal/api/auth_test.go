package api

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/tasks"
)

// These tests are written as an attacker would try: a web page on another
// origin, a DNS-rebinding host name, a generated app in its preview, a
// no-cors form post, a forged or stale cookie, a token in the wrong place.

// signIn follows the sign-in link and returns the session cookie it set.
func (e *env) signIn() *http.Cookie {
	e.t.Helper()
	r := e.must(http.StatusSeeOther, "GET", "/?token="+testToken, nil, "Authorization", "", "Sec-Fetch-Site", "none")
	if loc := r.Header.Get("Location"); loc != "/" {
		e.t.Fatalf("sign-in redirects to %q, want / (the token dropped from the URL)", loc)
	}
	for _, c := range r.Cookies() {
		if strings.HasPrefix(c.Name, "catalyst_session_") {
			return c
		}
	}
	e.t.Fatalf("sign-in set no session cookie: %v", r.Header)
	return nil
}

// asBrowser returns headers of a dashboard request with the cookie: no
// token, as the dashboard's fetch() sends them.
func asBrowser(c *http.Cookie, more ...string) []string {
	return append([]string{"Authorization", "", "Cookie", c.Name + "=" + c.Value}, more...)
}

func TestEveryAPIRouteNeedsTheToken(t *testing.T) {
	e := newEnv(t)
	task := e.createTask(e.createProject("p").ID, "x")
	e.writeWorkspace(task.ID, map[string]string{"a.txt": "secret content"})
	before := e.counts()
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/api/", ""},
		{"GET", "/api/projects", ""},
		{"POST", "/api/projects", `{"name":"pwned"}`},
		{"PATCH", "/api/projects/" + task.ProjectID, `{"name":"pwned"}`},
		{"DELETE", "/api/projects/" + task.ProjectID, ""},
		{"GET", "/api/tasks", ""},
		{"POST", "/api/tasks", `{"project_id":"` + task.ProjectID + `","prompt":"rm -rf"}`},
		{"GET", "/api/tasks/" + task.ID, ""},
		{"POST", "/api/tasks/" + task.ID + "/cancel", ""},
		{"POST", "/api/tasks/" + task.ID + "/retry", ""},
		{"GET", "/api/logs/" + task.ID, ""},
		{"GET", "/api/tasks/" + task.ID + "/artifacts", ""},
		{"GET", "/api/tasks/" + task.ID + "/files", ""},
		{"GET", "/api/tasks/" + task.ID + "/files/a.txt", ""},
		{"GET", "/api/tasks/" + task.ID + "/archive.zip", ""},
		{"GET", "/api/tasks/" + task.ID + "/events", ""},
		{"GET", "/ws/" + task.ID, ""},
		{"GET", "/api/deployments/" + task.ID, ""},
		{"POST", "/api/explorer/scan", `{"system_name":"x"}`},
		{"GET", "/api/explorer/scans", ""},
		{"GET", "/api/no-such-endpoint", ""},
	} {
		for name, hdr := range map[string][]string{
			"no credential":       {"Authorization", ""},
			"wrong token":         {"Authorization", "Bearer " + testToken + "x"},
			"token prefix":        {"Authorization", "Bearer " + testToken[:len(testToken)-1]},
			"basic scheme":        {"Authorization", "Basic " + testToken},
			"token, no scheme":    {"Authorization", testToken},
			"wrong access_token":  {"Authorization", ""}, // with ?access_token= below
			"empty bearer":        {"Authorization", "Bearer "},
			"loopback is nothing": {"Authorization", "", "X-Forwarded-For", "127.0.0.1"},
		} {
			p := c.path
			if name == "wrong access_token" {
				p += "?access_token=" + testToken[:20]
			}
			var body any
			if c.body != "" {
				body = c.body
			}
			r := e.do(c.method, p, body, hdr...)
			if r.StatusCode != 401 {
				t.Errorf("%s %s with %s: %d, want 401: %.200s", c.method, p, name, r.StatusCode, r.body)
				continue
			}
			r.problem(t)
			if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") || strings.Contains(string(r.body), "secret content") {
				t.Errorf("%s %s: %v %s", c.method, p, r.Header, r.body)
			}
		}
	}
	if after := e.counts(); after != before {
		t.Fatalf("unauthenticated requests changed the store: %s -> %s", before, after)
	}
	if got, _ := e.store.GetProject(context.Background(), task.ProjectID); got.Name != "p" || got.Status != domain.ProjectActive {
		t.Fatalf("project changed: %+v", got)
	}

	// The token as a Bearer header or as ?access_token= works, and the
	// query parameter never comes back in a Link header.
	e.must(200, "GET", "/api/tasks/"+task.ID, nil, "Authorization", "bEaReR "+testToken)
	e.createTask(task.ProjectID, "second")
	r := e.must(200, "GET", "/api/tasks?limit=1&access_token="+testToken, nil, "Authorization", "")
	if link := r.Header.Get("Link"); link == "" || strings.Contains(link, testToken) || strings.Contains(link, "access_token") {
		t.Fatalf("Link header %q: missing or echoes the token", link)
	}
}

func TestSignInLinkSetsAStrictSessionCookie(t *testing.T) {
	e := newEnv(t, withConfig(func(c *Settings) { c.SessionTimeout = 60 * time.Minute }))
	c := e.signIn()
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure || c.MaxAge != 3600 {
		t.Fatalf("cookie %+v: want HttpOnly, SameSite=Strict, Path=/, Max-Age=SESSION_TIMEOUT, not Secure on http", c)
	}
	if strings.Contains(c.Value, testToken) {
		t.Fatal("the cookie carries the token itself")
	}
	e.must(200, "GET", "/api/projects", nil, asBrowser(c)...)
	e.must(200, "GET", "/api/projects", nil, asBrowser(c, "Sec-Fetch-Site", "same-origin", "Origin", e.srv.URL)...)
	e.must(200, "POST", "/api/projects", map[string]string{"name": "from the dashboard"}, asBrowser(c, "Sec-Fetch-Site", "same-origin", "Origin", e.srv.URL)...)
	// /login?token= too; the token never appears in the redirect.
	r := e.must(303, "GET", "/login?token="+testToken, nil, "Authorization", "")
	if strings.Contains(r.Header.Get("Location"), testToken) || r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("login redirect %v", r.Header)
	}

	// A wrong link: 401, a page that says what to do, no cookie.
	for _, p := range []string{"/?token=" + testToken + "0", "/?token=", "/login?token=guess"} {
		r := e.must(401, "GET", p, nil, "Authorization", "")
		if len(r.Cookies()) != 0 || !strings.Contains(string(r.body), "catalyst serve") {
			t.Fatalf("%s: cookies %v body %s", p, r.Cookies(), r.body)
		}
	}

	// Forged, tampered and stale cookies.
	exp, mac, _ := strings.Cut(c.Value, ".")
	later := strconv.FormatInt(time.Now().Add(24*time.Hour).Unix(), 10)
	other := newAuthenticator("another-servers-token-0123456789", e.api.cfg.PublicURL, time.Hour)
	rec := httptest.NewRecorder()
	other.setSession(rec, httptest.NewRequest("GET", "/", nil))
	otherCookie := rec.Result().Cookies()[0]
	for name, v := range map[string]string{
		"extended expiry":     later + "." + mac,
		"no mac":              exp,
		"empty mac":           exp + ".",
		"mac of another key":  strings.SplitN(otherCookie.Value, ".", 2)[0] + "." + strings.SplitN(otherCookie.Value, ".", 2)[1],
		"flipped mac":         exp + "." + strings.ToUpper(mac[:1]) + mac[1:] + "A",
		"token as the cookie": testToken,
	} {
		forged := &http.Cookie{Name: c.Name, Value: v}
		if r := e.do("GET", "/api/projects", nil, asBrowser(forged)...); r.StatusCode != 401 {
			t.Errorf("%s: %d, want 401", name, r.StatusCode)
		}
	}

	// Expiry and renewal: past half its life the cookie is renewed; past
	// its end it is refused.
	start := time.Now()
	e.api.auth.now = func() time.Time { return start.Add(20 * time.Minute) }
	if r := e.must(200, "GET", "/api/projects", nil, asBrowser(c)...); len(r.Cookies()) != 0 {
		t.Fatal("a fresh cookie was renewed")
	}
	e.api.auth.now = func() time.Time { return start.Add(40 * time.Minute) }
	r = e.must(200, "GET", "/api/projects", nil, asBrowser(c)...)
	if len(r.Cookies()) != 1 || r.Cookies()[0].Value == c.Value {
		t.Fatalf("an old cookie was not renewed: %v", r.Cookies())
	}
	e.api.auth.now = func() time.Time { return start.Add(61 * time.Minute) }
	e.must(401, "GET", "/api/projects", nil, asBrowser(c)...)

	// Behind TLS (an https public URL) the cookie is Secure.
	tls := newEnv(t, withConfig(func(c *Settings) { c.PublicURL = "https://catalyst.example.com" }))
	if c := tls.signIn(); !c.Secure {
		t.Fatalf("cookie not Secure behind https: %+v", c)
	}
}

// A wrong token is refused even when a valid cookie comes with it: the
// client meant the token.
func TestWrongTokenBeatsAValidCookie(t *testing.T) {
	e := newEnv(t)
	c := e.signIn()
	e.must(401, "GET", "/api/projects", nil, "Authorization", "Bearer nope", "Cookie", c.Name+"="+c.Value)
	e.must(401, "GET", "/api/projects?access_token=nope", nil, asBrowser(c)...)
}

func TestTheCookieCountsOnlyForTheDashboardsOwnOrigin(t *testing.T) {
	e := newEnv(t) // CORS_ORIGINS "*"
	c := e.signIn()
	before := e.counts()
	for name, hdr := range map[string][]string{
		// Another app on another port of localhost: same site, so the
		// browser attaches the SameSite=Strict cookie.
		"another localhost port (cors)":    {"Origin", "http://localhost:3000", "Sec-Fetch-Site", "same-site"},
		"another localhost port (no-cors)": {"Sec-Fetch-Site", "same-site"},
		"a page elsewhere":                 {"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"},
		"a page elsewhere, old browser":    {"Origin", "https://evil.example"},
		"a cross-site navigation":          {"Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "navigate"},
	} {
		for _, m := range []struct{ method, path string }{{"GET", "/api/tasks"}, {"POST", "/api/projects"}, {"GET", "/api/health"}} {
			r := e.do(m.method, m.path, map[string]string{"name": "csrf"}, asBrowser(c, hdr...)...)
			if r.StatusCode != 401 {
				t.Errorf("%s: %s %s %d, want 401: %s", name, m.method, m.path, r.StatusCode, r.body)
			}
		}
	}
	if after := e.counts(); after != before {
		t.Fatalf("cross-origin requests with the cookie changed the store: %s -> %s", before, after)
	}
	// A reverse proxy that rewrites Host: the browser still vouches that the
	// request is same-origin, and that decides.
	e.must(200, "GET", "/api/tasks", nil, asBrowser(c, "Sec-Fetch-Site", "same-origin", "Origin", "http://127.0.0.1:9")...)
	// A page that holds the token (CORS_ORIGINS "*") may call with it: the
	// token is proof, the cookie is not.
	r := e.must(200, "GET", "/api/tasks", nil, "Origin", "http://localhost:3000", "Sec-Fetch-Site", "same-site")
	if r.Header.Get("Access-Control-Allow-Origin") != "*" || r.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatalf("CORS headers %v", r.Header)
	}
}

func TestOpaqueAndPreviewOriginsAreRefused(t *testing.T) {
	for _, cors := range [][]string{{"*"}, {"null", "http://localhost:3000"}} {
		e := newEnv(t, withConfig(func(c *Settings) { c.CORSOrigins = cors }))
		// The list may even name the preview origin: it is refused anyway.
		e.api.cfg.CORSOrigins = append(e.api.cfg.CORSOrigins, e.preview.URL)
		c := e.signIn()
		task := e.createTask(e.createProject("p").ID, "x")
		before := e.counts()
		for _, origin := range []string{"null", e.preview.URL} {
			for _, hdr := range [][]string{
				{"Origin", origin}, // with the token
				asBrowser(c, "Origin", origin, "Sec-Fetch-Site", "same-site"),
				{"Origin", origin, "Sec-Fetch-Site", "cross-site", "Authorization", ""}, // no-cors, nothing but what the browser adds
			} {
				for _, m := range []struct{ method, path, ct string }{
					{"GET", "/api/tasks/" + task.ID, ""},
					{"POST", "/api/tasks", "text/plain"},
					{"POST", "/api/tasks", "application/json"},
					{"POST", "/api/tasks/" + task.ID + "/cancel", ""},
					{"GET", "/api/tasks/" + task.ID + "/events", ""},
					{"GET", "/ws/" + task.ID, ""},
					{"OPTIONS", "/api/tasks", ""},
				} {
					h := append([]string{"Content-Type", m.ct}, hdr...)
					if m.method == "OPTIONS" {
						h = append(h, "Access-Control-Request-Method", "POST")
					}
					r := e.do(m.method, m.path, `{"project_id":"`+task.ProjectID+`","prompt":"spawn"}`, h...)
					if r.StatusCode != 403 {
						t.Errorf("CORS %v, Origin %s %v: %s %s: %d, want 403", cors, origin, hdr, m.method, m.path, r.StatusCode)
					}
					if r.Header.Get("Access-Control-Allow-Origin") != "" {
						t.Errorf("Origin %s got CORS access: %v", origin, r.Header)
					}
				}
			}
		}
		if after := e.counts(); after != before {
			t.Fatalf("the preview's requests changed the store: %s -> %s", before, after)
		}
		if len(e.runner.enqueued()) != 1 {
			t.Fatalf("a task was started from a preview: %v", e.runner.enqueued())
		}
		if got, _ := e.store.GetTask(context.Background(), task.ID); got.Status != domain.TaskPending {
			t.Fatalf("the task was cancelled from a preview: %s", got.Status)
		}
	}
}

func TestRefusedOriginsAreNotExecuted(t *testing.T) {
	e := newEnv(t, withConfig(func(c *Settings) { c.CORSOrigins = []string{"https://app.example.com"} }))
	p := e.createProject("p")
	before := e.counts()
	for _, m := range []string{"POST /api/projects", "POST /api/tasks", "DELETE /api/projects/" + p.ID, "GET /api/tasks"} {
		method, path, _ := strings.Cut(m, " ")
		r := e.do(method, path, `{"name":"x","project_id":"`+p.ID+`","prompt":"x"}`, "Origin", "https://evil.example")
		if r.StatusCode != 403 {
			t.Errorf("%s from a refused origin, with the token: %d, want 403", m, r.StatusCode)
		}
		r.problem(t)
	}
	if after := e.counts(); after != before {
		t.Fatalf("refused origins' requests were executed: %s -> %s", before, after)
	}
	// The listed origin gets access, with the token only.
	r := e.must(200, "POST", "/api/projects", map[string]string{"name": "from the listed app"}, "Origin", "https://app.example.com", "Sec-Fetch-Site", "cross-site")
	if r.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Fatalf("listed origin: %v", r.Header)
	}
	c := e.signIn()
	e.must(401, "GET", "/api/tasks", nil, asBrowser(c, "Origin", "https://app.example.com", "Sec-Fetch-Site", "cross-site")...)
}

func TestMutatingRequestsMustBeJSON(t *testing.T) {
	e := newEnv(t)
	p := e.createProject("p")
	task := e.createTask(p.ID, "x")
	c := e.signIn()
	before := e.counts()
	body := `{"name":"no-cors","project_id":"` + p.ID + `","prompt":"x"}`
	for _, ct := range []string{"", "text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
		"text/json", "application/jsonx", "application/json-seq", "json", "application/", ";application/json"} {
		for _, m := range []string{"POST /api/projects", "POST /api/tasks", "PATCH /api/projects/" + p.ID, "DELETE /api/projects/" + p.ID,
			"POST /api/tasks/" + task.ID + "/cancel", "POST /api/explorer/scan", "PUT /api/projects"} {
			method, path, _ := strings.Cut(m, " ")
			for _, who := range [][]string{{"Content-Type", ct}, asBrowser(c, "Content-Type", ct, "Sec-Fetch-Site", "same-origin")} {
				r := e.do(method, path, body, who...)
				if r.StatusCode != 415 {
					t.Errorf("%s with Content-Type %q: %d, want 415: %.200s", m, ct, r.StatusCode, r.body)
				}
			}
		}
	}
	if after := e.counts(); after != before {
		t.Fatalf("non-JSON bodies were executed: %s -> %s", before, after)
	}
	if got, _ := e.store.GetTask(context.Background(), task.ID); got.Status != domain.TaskPending {
		t.Fatalf("cancelled by a non-JSON request: %s", got.Status)
	}
	for _, ct := range []string{"application/json", "application/json; charset=utf-8", "application/merge-patch+json"} {
		e.must(200, "PATCH", "/api/projects/"+p.ID, `{"description":"ok"}`, "Content-Type", ct)
	}
	e.must(200, "POST", "/api/tasks/"+task.ID+"/cancel", nil) // an empty body, declared JSON
}

func TestHostHeaderMustBeOurs(t *testing.T) {
	e := newEnv(t, withConfig(func(c *Settings) {
		c.PublicURL = "https://catalyst.example.com"
		c.AllowedHosts = []string{"box.internal", "10.1.2.3"}
	}))
	task := e.createTask(e.createProject("p").ID, "x")
	_, port, _ := strings.Cut(e.srv.Listener.Addr().String(), ":")
	for _, host := range []string{"evil.test", "evil.test:" + port, "localhost.evil.test", "127.0.0.1.nip.io", "catalyst.example.com.evil.test",
		"LOCALHOST.evil.test", "box.internal.", "[::2]:" + port, "0.0.0.0"} {
		for _, p := range []string{"/api/tasks", "/", "/api/health", "/docs"} {
			r := e.do("GET", p, nil, "Host", host)
			if r.StatusCode != http.StatusMisdirectedRequest {
				t.Errorf("Host %q %s: %d, want 421", host, p, r.StatusCode)
				continue
			}
			r.problem(t)
		}
		// The WebSocket handshake too.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, resp, err := websocket.Dial(ctx, e.wsURL("/ws/"+task.ID), authed(&websocket.DialOptions{Host: host}))
		cancel()
		if err == nil || resp == nil || resp.StatusCode != http.StatusMisdirectedRequest {
			t.Errorf("WebSocket with Host %q: %v %v", host, err, resp)
		}
		// And the preview origin.
		if r := e.do("GET", e.preview.URL+"/apps/"+task.ID+"/", nil, "Host", host); r.StatusCode != http.StatusMisdirectedRequest {
			t.Errorf("preview with Host %q: %d", host, r.StatusCode)
		}
	}
	for _, host := range []string{"localhost", "localhost:" + port, "127.0.0.1:" + port, "[::1]:" + port, "LocalHost:" + port,
		"catalyst.example.com", "box.internal:" + port, "10.1.2.3"} {
		e.must(200, "GET", "/api/tasks", nil, "Host", host)
	}
}

func TestHealthAndMetricsAreOpenOnlyToFirstPartyLoopback(t *testing.T) {
	e := newEnv(t, withConfig(func(c *Settings) { c.EnableMetrics = true }))
	for _, p := range []string{"/api/health", "/metrics"} {
		e.must(200, "GET", p, nil, "Authorization", "")
		// A page elsewhere learns nothing, not even that the server is up.
		for _, hdr := range [][]string{{"Origin", "https://evil.example"}, {"Origin", "null"}, {"Sec-Fetch-Site", "cross-site"}, {"Sec-Fetch-Site", "same-site"}} {
			if r := e.do("GET", p, nil, append([]string{"Authorization", ""}, hdr...)...); r.StatusCode != 401 && r.StatusCode != 403 {
				t.Errorf("%s from %v: %d", p, hdr, r.StatusCode)
			}
		}
		// A client that is not on loopback needs the token.
		h := e.api.handler()
		req := httptest.NewRequest("GET", p, nil)
		req.Host = "localhost"
		req.RemoteAddr = "192.0.2.7:40000"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 401 {
			t.Errorf("%s from 192.0.2.7 without the token: %d", p, rec.Code)
		}
		req.Header.Set("Authorization", bearer)
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Errorf("%s from 192.0.2.7 with the token: %d", p, rec.Code)
		}
	}
}

func TestPathTricksDoNotSkipTheCheck(t *testing.T) {
	e := newEnv(t)
	e.createProject("the-secret-project")
	for _, p := range []string{"/docs/../api/projects", "/./api/projects", "//api/projects", "/api//projects", "/%61pi/projects",
		"/api/./projects", "/apps/../api/projects", "/docs/%2e%2e/api/projects", "/API/projects", "/api/projects?access_token="} {
		r := e.do("GET", p, nil, "Authorization", "")
		if r.StatusCode == 200 && strings.Contains(string(r.body), "the-secret-project") {
			t.Errorf("%s served the API without the token", p)
		}
	}
}

func TestWebSocketAndSSEWithEachCredential(t *testing.T) {
	e := newEnv(t)
	task := e.createTask(e.createProject("p").ID, "x")
	e.finish(task.ID)
	c := e.signIn()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dial := func(path string, h http.Header) (int, error) {
		conn, resp, err := websocket.Dial(ctx, e.wsURL(path), &websocket.DialOptions{HTTPHeader: h})
		if err == nil {
			conn.CloseNow()
			return 101, nil
		}
		if resp == nil {
			return 0, err
		}
		return resp.StatusCode, err
	}
	cookie := c.Name + "=" + c.Value
	for _, tc := range []struct {
		name, query string
		h           http.Header
		want        int
	}{
		{"nothing", "", http.Header{}, 401},
		{"bearer", "", http.Header{"Authorization": {bearer}}, 101},
		{"access_token", "?access_token=" + testToken, http.Header{}, 101},
		{"wrong access_token", "?access_token=" + strings.Repeat("x", 27), http.Header{}, 401},
		{"dashboard cookie", "", http.Header{"Cookie": {cookie}, "Origin": {e.srv.URL}}, 101},
		{"cookie, other localhost port", "", http.Header{"Cookie": {cookie}, "Origin": {"http://localhost:3000"}}, 401},
		{"cookie, rebinding page", "", http.Header{"Cookie": {cookie}, "Origin": {"http://evil.test:1"}, "Sec-Fetch-Site": {"cross-site"}}, 401},
		{"token from a preview", "?access_token=" + testToken, http.Header{"Origin": {"null"}}, 403},
		{"token from the preview origin", "", http.Header{"Authorization": {bearer}, "Origin": {e.preview.URL}}, 403},
	} {
		if got, err := dial("/ws/"+task.ID+tc.query, tc.h); got != tc.want {
			t.Errorf("WebSocket, %s: %d (%v), want %d", tc.name, got, err, tc.want)
		}
		// SSE: the same rules (a finished task streams its events, then ends).
		sseWant := tc.want
		if sseWant == 101 {
			sseWant = 200
		}
		hdr := []string{"Authorization", tc.h.Get("Authorization"), "Cookie", tc.h.Get("Cookie"), "Origin", tc.h.Get("Origin"), "Sec-Fetch-Site", tc.h.Get("Sec-Fetch-Site")}
		if r := e.do("GET", "/api/tasks/"+task.ID+"/events"+tc.query, nil, hdr...); r.StatusCode != sseWant {
			t.Errorf("SSE, %s: %d, want %d", tc.name, r.StatusCode, sseWant)
		}
	}
}

func TestTheTokenNeverReachesTheLog(t *testing.T) {
	var buf syncBuf
	e := newEnv(t, withServer(func(s *server) {
		s.log = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}))
	task := e.createTask(e.createProject("p").ID, "x")
	e.finish(task.ID)
	e.must(200, "GET", "/api/tasks?access_token="+testToken, nil, "Authorization", "")
	e.must(303, "GET", "/?token="+testToken, nil, "Authorization", "")
	e.do("GET", "/?token="+testToken+"wrong", nil)
	e.must(200, "GET", "/api/tasks/"+task.ID+"/events?after=0&access_token="+testToken, nil, "Authorization", "")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if conn, _, err := websocket.Dial(ctx, e.wsURL("/ws/"+task.ID+"?access_token="+testToken), nil); err == nil {
		conn.CloseNow()
	} else {
		t.Fatal(err)
	}
	e.signIn()
	time.Sleep(100 * time.Millisecond) // the WebSocket's access-log line is written when it ends
	log := buf.String()
	if !strings.Contains(log, "http request") {
		t.Fatalf("no access log written: %q", log)
	}
	if strings.Contains(log, testToken) || strings.Contains(log, testToken[:12]) {
		t.Fatalf("the token reached the log:\n%s", log)
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestSecurityHeadersAndCSP(t *testing.T) {
	e := newEnv(t, func(o *Options, _ *server) { o.UI = os.DirFS(t.TempDir()) })
	for p, want := range map[string]string{"/": dashboardCSP, "/tasks/x": dashboardCSP, "/docs": docsCSP, "/api/tasks": apiCSP, "/openapi.json": apiCSP} {
		r := e.do("GET", p, nil)
		h := r.Header
		if h.Get("Content-Security-Policy") != want || h.Get("X-Frame-Options") != "DENY" || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: %v", p, h)
		}
		if !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
			t.Errorf("%s may be framed", p)
		}
	}
	if strings.Contains(dashboardCSP, "unsafe") || !strings.Contains(dashboardCSP, "script-src 'self'") {
		t.Errorf("dashboard CSP allows inline or foreign scripts: %s", dashboardCSP)
	}
}

func TestPreviewsLiveOnTheirOwnOrigin(t *testing.T) {
	e := newEnv(t)
	task := e.createTask(e.createProject("p").ID, "x")
	e.writeWorkspace(task.ID, map[string]string{"index.html": "<h1>todo</h1>"})
	if err := e.store.PutDeployment(context.Background(), domain.Deployment{ID: "d", TaskID: task.ID, URL: e.preview.URL + "/apps/" + task.ID + "/", CommitSHA: strings.Repeat("c", 40)}); err != nil {
		t.Fatal(err)
	}
	// The API's origin never serves generated content: it redirects, with
	// a grant for the asking actor.
	for _, c := range []struct{ path, rest string }{{"/apps/" + task.ID + "/", "/"}, {"/apps/" + task.ID + "/index.html?x=1", "/index.html?x=1"}, {"/apps/" + task.ID, "/"}} {
		r := e.must(302, "GET", e.srv.URL+c.path, nil)
		loc := r.Header.Get("Location")
		if !strings.HasPrefix(loc, e.preview.URL+"/apps/"+task.ID+"/g1.") || grantSegment.ReplaceAllString(strings.TrimPrefix(loc, e.preview.URL), "") != "/apps/"+task.ID+c.rest {
			t.Errorf("%s redirects to %q", c.path, loc)
		}
		if strings.Contains(string(r.body), "<h1>todo</h1>") {
			t.Errorf("%s served the app on the API's origin", c.path)
		}
		// Following it works without the API token: the grant is the key.
		if r := e.do("GET", loc, nil, "Authorization", ""); r.StatusCode != 200 && r.StatusCode != 301 {
			t.Errorf("following %s: %d %s", loc, r.StatusCode, r.body)
		}
	}
	// Without a credential the API's origin mints nothing.
	e.must(401, "GET", e.srv.URL+"/apps/"+task.ID+"/", nil, "Authorization", "")
	// Without a grant, or with a forged or another task's, the preview
	// origin serves nothing.
	other := e.createTask(e.createProject("q").ID, "y")
	for _, p := range []string{"/apps/" + task.ID + "/", "/apps/" + task.ID + "/index.html",
		strings.Replace(e.withGrant("/apps/"+other.ID+"/", tasks.Local()), other.ID, task.ID, 1),
		strings.Replace(e.withGrant("/apps/"+task.ID+"/", tasks.Local()), "g1.", "g1.A", 1)} {
		r := e.do("GET", e.preview.URL+p, nil, "Authorization", "")
		if r.StatusCode != 404 || strings.Contains(string(r.body), "todo") {
			t.Errorf("preview %s without a valid grant: %d %s", p, r.StatusCode, r.body)
		}
	}
	r := e.must(200, "GET", "/apps/"+task.ID+"/", nil, "Authorization", "") // previews need no token, but a grant
	if string(r.body) != "<h1>todo</h1>" || r.Header.Get("Content-Security-Policy") != previewCSP {
		t.Fatalf("preview: %s %v", r.body, r.Header)
	}
	for _, want := range []string{"sandbox allow-scripts allow-forms;", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(previewCSP, want) || strings.Contains(previewCSP, "allow-same-origin") {
			t.Errorf("preview CSP %q lacks %q or grants the same origin", previewCSP, want)
		}
	}
	// The preview origin serves nothing else: not the API, not the dashboard.
	for _, p := range []string{"/api/tasks", "/api/health", "/ws/" + task.ID, "/", "/docs", "/metrics"} {
		if r := e.do("GET", e.preview.URL+p, nil); r.StatusCode != 404 {
			t.Errorf("preview origin %s: %d", p, r.StatusCode)
		}
	}
	if r := e.do("POST", e.preview.URL+"/api/tasks", `{}`); r.StatusCode != 404 && r.StatusCode != 405 {
		t.Errorf("preview origin POST: %d", r.StatusCode)
	}
}

func TestServerRefusesToStartWithoutAToken(t *testing.T) {
	if _, err := New(Options{Store: newEnv(t).store, Settings: Settings{MaxBodyBytes: 1 << 20, WebSocketPingInterval: time.Second}}); err == nil || !strings.Contains(err.Error(), "APIToken") {
		t.Fatalf("New without a token: %v", err)
	}
}

func TestLoadOrCreateToken(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	var wg sync.WaitGroup
	toks := make([]string, 8)
	created := make([]bool, 8)
	for i := range toks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			toks[i], created[i], err = LoadOrCreateToken(dir)
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	n := 0
	for i := range toks {
		if toks[i] != toks[0] || len(toks[i]) < 40 {
			t.Fatalf("servers starting together got different tokens: %q", toks)
		}
		if created[i] {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d of them say they created it", n)
	}
	p := filepath.Join(dir, TokenFile)
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file %v %v, want mode 0600", fi, err)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".api_token-*")); len(leftovers) != 0 {
		t.Fatalf("temporary files left: %v", leftovers)
	}
	again, created2, err := LoadOrCreateToken(dir)
	if err != nil || again != toks[0] || created2 {
		t.Fatalf("restart: %q %v %v", again, created2, err)
	}
	// Readable by others: refused, with what to do.
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateToken(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable token file: %v", err)
	}
	// A symlink planted in its place is not followed.
	os.Remove(p)
	if err := os.Symlink("/etc/hostname", p); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateToken(dir); err == nil || errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("symlinked token file: %v", err)
	}
}
