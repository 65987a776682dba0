package api

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/catalyst/catalyst/internal/accounts"
	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/store"
)

const userPassword = "correct horse battery"

// anon are the headers of a script with no credential.
var anon = []string{"Authorization", ""}

// withSignup replaces the env's accounts with one in the given mode.
func withSignup(mode accounts.SignupMode) envOption {
	return func(o *Options, s *server) {
		if s != nil {
			return
		}
		acc, err := accounts.New(accounts.Options{Store: o.Store, SessionTimeout: time.Hour, Signup: mode, BcryptCost: bcrypt.MinCost})
		if err != nil {
			panic(err)
		}
		o.Accounts = acc
	}
}

type loginResult struct {
	AccessToken string   `json:"access_token"`
	TokenType   string   `json:"token_type"`
	ExpiresIn   int      `json:"expires_in"`
	User        userView `json:"user"`
}

func (e *env) register(email string, status int) userView {
	e.t.Helper()
	var u userView
	r := e.must(status, "POST", "/api/auth/register", map[string]string{"email": email, "password": userPassword}, anon...)
	if status == 200 {
		r.json(e.t, &u)
	}
	return u
}

func (e *env) login(email string) loginResult {
	e.t.Helper()
	var l loginResult
	e.must(200, "POST", "/api/auth/login", map[string]string{"email": email, "password": userPassword}, anon...).json(e.t, &l)
	return l
}

func as(token string) []string { return []string{"Authorization", "Bearer " + token} }

// auditEntries lists the audit log through the store.
func (e *env) auditEntries(f store.AuditFilter) []domain.AuditEntry {
	e.t.Helper()
	list, _, err := e.store.ListAudit(context.Background(), f, store.Page{Limit: store.MaxLimit})
	if err != nil {
		e.t.Fatal(err)
	}
	return list
}

func TestRegisterLoginMeLogout(t *testing.T) {
	e := newEnv(t)
	var cfg authConfigBody
	e.must(200, "GET", "/api/auth/config", nil, anon...).json(t, &cfg)
	if cfg.HasUsers || cfg.Signup != accounts.SignupOpen {
		t.Fatalf("config before anyone registered: %+v", cfg)
	}
	admin := e.register("Admin@Example.com", 200)
	if admin.Role != domain.RoleAdmin || admin.Email != "admin@example.com" {
		t.Fatalf("first user: %+v, want admin", admin)
	}
	bob := e.register("bob@example.com", 200)
	if bob.Role != domain.RoleUser {
		t.Fatalf("second user: %+v, want user", bob)
	}
	e.must(409, "POST", "/api/auth/register", map[string]string{"email": "BOB@example.com", "password": userPassword}, anon...)
	e.must(422, "POST", "/api/auth/register", map[string]string{"email": "carol@example.com", "password": "short"}, anon...)
	e.must(200, "GET", "/api/auth/config", nil, anon...).json(t, &cfg)
	if !cfg.HasUsers {
		t.Fatal("has_users false after registrations")
	}

	// Wrong password and unknown address: one answer.
	wrong := e.must(401, "POST", "/api/auth/login", map[string]string{"email": "bob@example.com", "password": "not the password"}, anon...)
	unknown := e.must(401, "POST", "/api/auth/login", map[string]string{"email": "nobody@example.com", "password": userPassword}, anon...)
	if wrong.problem(t)["detail"] != unknown.problem(t)["detail"] {
		t.Errorf("the answers tell a wrong password from an unknown address:\n%s\n%s", wrong.body, unknown.body)
	}

	l := e.login("bob@example.com")
	if l.TokenType != "bearer" || l.ExpiresIn != 3600 || !strings.HasPrefix(l.AccessToken, accounts.SessionPrefix) || l.User.ID != bob.ID {
		t.Fatalf("login answer: %+v", l)
	}
	var me userView
	e.must(200, "GET", "/api/auth/me", nil, as(l.AccessToken)...).json(t, &me)
	if me != bob {
		t.Fatalf("me = %+v, want %+v", me, bob)
	}
	e.must(200, "GET", "/api/projects", nil, as(l.AccessToken)...)
	e.must(200, "GET", "/api/auth/me", nil).json(t, &me)
	if me.Role != domain.RoleAdmin || me.ID != "local" {
		t.Fatalf("me with the server token = %+v, want the local admin", me)
	}

	e.must(204, "POST", "/api/auth/logout", nil, as(l.AccessToken)...)
	e.must(401, "GET", "/api/auth/me", nil, as(l.AccessToken)...)
	e.must(401, "GET", "/api/projects", nil, as(l.AccessToken)...)
	e.must(401, "GET", "/api/projects", nil, as("cats_forged")...)
	e.must(401, "POST", "/api/auth/logout", nil, anon...)

	// The audit trail of all that.
	want := map[string]int{ActionRegister: 4, ActionLoginFailed: 2, ActionLogin: 1, ActionLogout: 1}
	for action, n := range want {
		if got := e.auditEntries(store.AuditFilter{Action: action}); len(got) != n {
			t.Errorf("%d %s entries, want %d: %+v", len(got), action, n, got)
		}
	}
	failed := e.auditEntries(store.AuditFilter{Action: ActionLoginFailed})
	for _, f := range failed {
		if f.Result != domain.AuditDenied || f.Status != 401 {
			t.Errorf("failed login entry: %+v", f)
		}
		if strings.Contains(f.Detail+f.ActorEmail, "nobody@") {
			t.Errorf("an unknown typed address was recorded: %+v", f)
		}
	}
	if ok := e.auditEntries(store.AuditFilter{Action: ActionLogin}); ok[0].ActorID != bob.ID || ok[0].ActorEmail != "bob@example.com" || ok[0].Result != domain.AuditOK {
		t.Errorf("login entry: %+v", ok[0])
	}
	// No password or token anywhere in the log.
	for _, x := range e.auditEntries(store.AuditFilter{}) {
		all := strings.Join([]string{x.Detail, x.ResourceID, x.UserAgent, x.Action}, " ")
		if strings.Contains(all, userPassword) || strings.Contains(all, l.AccessToken) || strings.Contains(all, "not the password") {
			t.Fatalf("a secret reached the audit log: %+v", x)
		}
	}
}

func TestSignupModes(t *testing.T) {
	t.Run("closed", func(t *testing.T) {
		e := newEnv(t, withSignup(accounts.SignupClosed))
		e.register("admin@example.com", 200) // the first user always may
		e.register("bob@example.com", 403)
		admin := e.login("admin@example.com")
		var u userView
		e.must(200, "POST", "/api/users", map[string]string{"email": "bob@example.com", "password": userPassword}, as(admin.AccessToken)...).json(t, &u)
		if u.Role != domain.RoleUser {
			t.Fatalf("admin-created user: %+v", u)
		}
		bob := e.login("bob@example.com")
		e.must(403, "POST", "/api/users", map[string]string{"email": "eve@example.com", "password": userPassword}, as(bob.AccessToken)...)
		e.must(403, "GET", "/api/users", nil, as(bob.AccessToken)...)
		var users []userView
		e.must(200, "GET", "/api/users", nil, as(admin.AccessToken)...).json(t, &users)
		if len(users) != 2 {
			t.Fatalf("users: %+v", users)
		}
		if strings.Contains(string(e.must(200, "GET", "/api/users", nil).body), "bcrypt") {
			t.Fatal("the user list shows password hashes")
		}
	})
	t.Run("invite", func(t *testing.T) {
		e := newEnv(t, withSignup(accounts.SignupInvite))
		e.register("admin@example.com", 200)
		e.register("bob@example.com", 403)
		admin := e.login("admin@example.com")
		var inv inviteView
		e.must(200, "POST", "/api/auth/invites", map[string]string{}, as(admin.AccessToken)...).json(t, &inv)
		if !strings.HasPrefix(inv.Token, accounts.InvitePrefix) {
			t.Fatalf("invite: %+v", inv)
		}
		body := map[string]string{"email": "bob@example.com", "password": userPassword, "invite": inv.Token}
		e.must(200, "POST", "/api/auth/register", body, anon...)
		body["email"] = "carol@example.com"
		e.must(403, "POST", "/api/auth/register", body, anon...)
		bob := e.login("bob@example.com")
		e.must(403, "POST", "/api/auth/invites", map[string]string{}, as(bob.AccessToken)...)
	})
}

func TestSessionExpiresAfterInactivity(t *testing.T) {
	e := newEnv(t)
	e.register("ada@example.com", 200)
	l := e.login("ada@example.com")
	for range 3 {
		e.clock.Advance(50 * time.Minute) // SESSION_TIMEOUT of the env: 60 minutes
		e.must(200, "GET", "/api/auth/me", nil, as(l.AccessToken)...)
	}
	e.clock.Advance(61 * time.Minute)
	e.must(401, "GET", "/api/auth/me", nil, as(l.AccessToken)...)
}

func TestSessionsListedAndRevoked(t *testing.T) {
	e := newEnv(t)
	e.register("ada@example.com", 200)
	e.register("bob@example.com", 200)
	a1, a2 := e.login("ada@example.com"), e.login("ada@example.com")
	b := e.login("bob@example.com")
	var list []sessionView
	e.must(200, "GET", "/api/auth/sessions", nil, as(a1.AccessToken)...).json(t, &list)
	if len(list) != 2 {
		t.Fatalf("sessions: %+v", list)
	}
	var other string
	for _, x := range list {
		if !x.Current {
			other = x.ID
		}
		if strings.Contains(string(e.must(200, "GET", "/api/auth/sessions", nil, as(a1.AccessToken)...).body), a2.AccessToken) {
			t.Fatal("the session list shows tokens")
		}
	}
	var bobs []sessionView
	e.must(200, "GET", "/api/auth/sessions", nil, as(b.AccessToken)...).json(t, &bobs)
	e.must(404, "DELETE", "/api/auth/sessions/"+other, nil, as(b.AccessToken)...) // not bob's
	e.must(404, "DELETE", "/api/auth/sessions/"+bobs[0].ID, nil, as(a1.AccessToken)...)
	e.must(204, "DELETE", "/api/auth/sessions/"+other, nil, as(a1.AccessToken)...)
	e.must(401, "GET", "/api/auth/me", nil, as(a2.AccessToken)...)
	e.must(200, "GET", "/api/auth/me", nil, as(a1.AccessToken)...)
	e.must(200, "GET", "/api/auth/me", nil, as(b.AccessToken)...)
	if got := e.auditEntries(store.AuditFilter{Action: ActionSessionRevoke}); len(got) != 3 {
		t.Errorf("%d session.revoke entries, want 3", len(got))
	}
}

func TestAPIKeysCreateUseRevoke(t *testing.T) {
	e := newEnv(t)
	e.register("ada@example.com", 200)
	e.register("bob@example.com", 200)
	ada, bob := e.login("ada@example.com"), e.login("bob@example.com")
	var k keyCreated
	e.must(200, "POST", "/api/auth/keys", map[string]string{"name": "ci"}, as(ada.AccessToken)...).json(t, &k)
	if !strings.HasPrefix(k.Key, accounts.APIKeyPrefix) || !strings.HasPrefix(k.Key, k.Prefix) {
		t.Fatalf("key: %+v", k)
	}
	e.must(400, "POST", "/api/auth/keys", map[string]string{"name": "x"}) // the server token is no user
	var me userView
	e.must(200, "GET", "/api/auth/me", nil, as(k.Key)...).json(t, &me)
	if me.Email != "ada@example.com" {
		t.Fatalf("the key authenticates %+v", me)
	}
	e.must(200, "POST", "/api/projects", map[string]string{"name": "by key"}, as(k.Key)...)
	e.must(200, "GET", "/api/tasks?access_token="+k.Key, nil, anon...)
	list := e.must(200, "GET", "/api/auth/keys", nil, as(ada.AccessToken)...)
	if strings.Contains(string(list.body), k.Key) || !strings.Contains(string(list.body), k.ID) {
		t.Fatalf("key list: %s", list.body)
	}
	var bobsKeys []domain.APIKey
	e.must(200, "GET", "/api/auth/keys", nil, as(bob.AccessToken)...).json(t, &bobsKeys)
	if len(bobsKeys) != 0 {
		t.Fatalf("bob sees ada's keys: %+v", bobsKeys)
	}
	e.must(404, "DELETE", "/api/auth/keys/"+k.ID, nil, as(bob.AccessToken)...)
	e.must(204, "DELETE", "/api/auth/keys/"+k.ID, nil, as(ada.AccessToken)...)
	e.must(401, "GET", "/api/auth/me", nil, as(k.Key)...)

	created := e.auditEntries(store.AuditFilter{Action: ActionKeyCreate})
	revoked := e.auditEntries(store.AuditFilter{Action: ActionKeyRevoke})
	if len(created) != 1 || created[0].ResourceID != k.ID || len(revoked) != 2 {
		t.Fatalf("key audit: created %+v, revoked %+v", created, revoked)
	}
	if revoked[1].Result != domain.AuditError || revoked[1].Status != 404 || revoked[0].Result != domain.AuditOK {
		t.Errorf("revocations: %+v", revoked)
	}
	// A mutating request made with the key is audited with its user.
	posts := e.auditEntries(store.AuditFilter{Action: "http.post", ResourceType: "projects"})
	if len(posts) != 1 || posts[0].ActorEmail != "ada@example.com" || posts[0].Status != 200 {
		t.Fatalf("project creation audit: %+v", posts)
	}
}

func TestBrowserLoginGetsAStrictCookie(t *testing.T) {
	e := newEnv(t)
	e.register("ada@example.com", 200)
	body := map[string]string{"email": "ada@example.com", "password": userPassword}
	// A script gets no cookie.
	if r := e.must(200, "POST", "/api/auth/login", body, anon...); r.Header.Get("Set-Cookie") != "" {
		t.Fatalf("a script got a cookie: %s", r.Header.Get("Set-Cookie"))
	}
	r := e.must(200, "POST", "/api/auth/login", body, "Authorization", "", "Sec-Fetch-Site", "same-origin", "Origin", e.srv.URL)
	var c *http.Cookie
	for _, x := range r.Cookies() {
		if x.Name == e.api.auth.cookieName {
			c = x
		}
	}
	if c == nil || !strings.HasPrefix(c.Value, accounts.SessionPrefix) || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" {
		t.Fatalf("session cookie: %+v (Set-Cookie %q)", c, r.Header.Get("Set-Cookie"))
	}
	if c.Secure {
		t.Error("Secure on a plain-HTTP loopback server: the browser would drop it")
	}
	same := asBrowser(c, "Sec-Fetch-Site", "same-origin", "Origin", e.srv.URL)
	e.must(200, "GET", "/api/auth/me", nil, same...)
	e.must(200, "POST", "/api/projects", map[string]string{"name": "from the dashboard"}, same...)
	// Another origin's page makes the browser attach the cookie: it does not count.
	e.must(401, "POST", "/api/projects", map[string]string{"name": "csrf"}, asBrowser(c, "Sec-Fetch-Site", "cross-site", "Origin", "http://evil.test")...)
	e.must(401, "GET", "/api/auth/me", nil, asBrowser(c, "Sec-Fetch-Site", "same-site")...)
	// Logout clears it and ends the session.
	out := e.must(204, "POST", "/api/auth/logout", nil, same...)
	if sc := out.Header.Get("Set-Cookie"); !strings.Contains(sc, "Max-Age=0") {
		t.Errorf("logout Set-Cookie %q does not clear the cookie", sc)
	}
	e.must(401, "GET", "/api/auth/me", nil, same...)

	// Behind TLS (an https public URL) the cookie is Secure.
	tlsEnv := newEnv(t, withConfig(func(s *Settings) { s.PublicURL = "https://catalyst.example.com" }))
	tlsEnv.register("ada@example.com", 200)
	r = tlsEnv.must(200, "POST", "/api/auth/login", body, "Authorization", "", "Sec-Fetch-Site", "same-origin")
	if sc := r.Header.Get("Set-Cookie"); !strings.Contains(sc, "Secure") {
		t.Errorf("Set-Cookie behind https: %q, want Secure", sc)
	}
}

func TestCrossOriginSignInRefused(t *testing.T) {
	e := newEnv(t)
	e.register("ada@example.com", 200)
	body := map[string]string{"email": "ada@example.com", "password": userPassword}
	for name, h := range map[string][]string{
		"cross-site fetch":         {"Sec-Fetch-Site", "cross-site", "Origin", "http://evil.test"},
		"same-site (another port)": {"Sec-Fetch-Site", "same-site", "Origin", "http://localhost:3000"},
		"origin only":              {"Origin", "http://evil.test"},
		"opaque origin":            {"Origin", "null"},
		"preview origin":           {"Origin", e.preview.URL, "Sec-Fetch-Site", "same-site"},
	} {
		for _, path := range []string{"/api/auth/login", "/api/auth/register"} {
			r := e.do("POST", path, body, append([]string{"Authorization", ""}, h...)...)
			if r.StatusCode != 403 || r.Header.Get("Set-Cookie") != "" || strings.Contains(string(r.body), "access_token") {
				t.Errorf("%s %s: %d %s", name, path, r.StatusCode, r.body)
			}
		}
	}
	// A no-cors form post (text/plain) is refused before anything runs.
	e.must(415, "POST", "/api/auth/login", `{"email":"ada@example.com","password":"`+userPassword+`"}`,
		"Authorization", "", "Content-Type", "text/plain")
	if n := len(e.auditEntries(store.AuditFilter{Action: ActionLogin})); n != 0 {
		t.Fatalf("%d logins happened", n)
	}
}

func TestAuditLogForAdminsOnly(t *testing.T) {
	e := newEnv(t)
	e.register("admin@example.com", 200)
	e.register("bob@example.com", 200)
	admin, bob := e.login("admin@example.com"), e.login("bob@example.com")
	// Bob's own project: with tenants, he may change only what he sees.
	var p domain.Project
	e.must(200, "POST", "/api/projects", map[string]string{"name": "audited"}, as(bob.AccessToken)...).json(t, &p)
	e.must(200, "PATCH", "/api/projects/"+p.ID, map[string]string{"name": "renamed"}, as(bob.AccessToken)...)
	e.must(401, "POST", "/api/projects", map[string]string{"name": "anonymous"}, anon...)

	e.must(403, "GET", "/api/audit", nil, as(bob.AccessToken)...)
	e.must(401, "GET", "/api/audit", nil, anon...)
	var all []domain.AuditEntry
	e.must(200, "GET", "/api/audit?limit=500", nil, as(admin.AccessToken)...).json(t, &all)
	var patch, denied *domain.AuditEntry
	for i, x := range all {
		switch {
		case x.Action == "http.patch":
			patch = &all[i]
		case x.Action == "http.post" && x.Result == domain.AuditDenied:
			denied = &all[i]
		}
	}
	if patch == nil || patch.ActorEmail != "bob@example.com" || patch.ResourceType != "projects" || patch.ResourceID != p.ID || patch.Result != domain.AuditOK {
		t.Fatalf("PATCH entry: %+v", patch)
	}
	if denied == nil || denied.Status != 401 || denied.ActorKind != "anonymous" {
		t.Fatalf("refused POST entry: %+v", denied)
	}
	// Filters and paging.
	var bobs []domain.AuditEntry
	e.must(200, "GET", "/api/audit?actor="+bob.User.ID+"&action=http.patch", nil).json(t, &bobs)
	if len(bobs) != 1 {
		t.Fatalf("filtered: %+v", bobs)
	}
	var page []domain.AuditEntry
	r := e.must(200, "GET", "/api/audit?limit=2&result=ok&since="+time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), nil)
	r.json(t, &page)
	if len(page) != 2 || !strings.Contains(r.Header.Get("Link"), `rel="next"`) {
		t.Fatalf("page: %d entries, Link %q", len(page), r.Header.Get("Link"))
	}
	e.must(400, "GET", "/api/audit?since=yesterday", nil)
	// There is no way to change or delete the log.
	for _, m := range []string{"POST", "PUT", "PATCH", "DELETE"} {
		if r := e.do(m, "/api/audit", map[string]string{}); r.StatusCode != 405 {
			t.Errorf("%s /api/audit: %d", m, r.StatusCode)
		}
		if r := e.do(m, "/api/audit/"+all[0].ID, map[string]string{}); r.StatusCode != 404 && r.StatusCode != 405 {
			t.Errorf("%s /api/audit/{id}: %d", m, r.StatusCode)
		}
	}
	var again []domain.AuditEntry
	e.must(200, "GET", "/api/audit?limit=500&action=http.patch&resource_type=projects", nil).json(t, &again)
	if len(again) != 1 || again[0] != *patch {
		t.Fatalf("the PATCH entry changed: %+v", again)
	}
}

func TestAuditOff(t *testing.T) {
	e := newEnv(t, func(o *Options, s *server) { o.Audit = nil })
	e.createProject("unaudited")
	e.must(404, "GET", "/api/audit", nil)
	if n := len(e.auditEntries(store.AuditFilter{})); n != 0 {
		t.Fatalf("%d entries with the audit log off", n)
	}
}
