package api

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"html"
	"io/fs"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/catalyst/catalyst/internal/accounts"
	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/tasks"
)

// The browser is a threat: any page the user visits, a DNS-rebinding host
// name and the generated apps' own scripts can all reach the API on
// loopback. Loopback is therefore not a credential. Every API request needs
// the server token, given as a session cookie (the dashboard, after the
// sign-in link), an Authorization: Bearer header (scripts) or an
// access_token query parameter (clients that cannot set headers). The
// cookie is ambient (the browser attaches it to requests other pages
// trigger), so it only counts on first-party requests; the other two are
// proof on their own, because no other page can know the token.

// TokenFile is the name of the generated server token in the data directory.
const TokenFile = "api_token"

// accessTokenParam is the query parameter for clients that cannot set headers.
const accessTokenParam = "access_token"

// LoadOrCreateToken returns the server token kept in dataDir/api_token,
// creating it (mode 0600, 256 random bits) at first start. A token file that
// others may read is refused: the token is the key to the whole server.
func LoadOrCreateToken(dataDir string) (token string, created bool, err error) {
	p := filepath.Join(dataDir, TokenFile)
	if tok, err := readToken(p); err == nil {
		return tok, false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", false, err
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return "", false, fmt.Errorf("data directory %s: %w", dataDir, err)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", false, err
	}
	tok := base64.RawURLEncoding.EncodeToString(b)
	// Written aside, then linked into place: a server starting at the same
	// time never reads a half-written token, and the first one wins.
	tmp, err := os.CreateTemp(dataDir, ".api_token-*")
	if err != nil {
		return "", false, err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return "", false, err
	}
	if _, err := tmp.WriteString(tok + "\n"); err != nil {
		tmp.Close()
		return "", false, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", false, err
	}
	if err := tmp.Close(); err != nil {
		return "", false, err
	}
	if err := os.Link(tmp.Name(), p); err != nil {
		if errors.Is(err, fs.ErrExist) {
			tok, err := readToken(p)
			return tok, false, err
		}
		return "", false, fmt.Errorf("saving the API token: %w", err)
	}
	return tok, true, nil
}

func readToken(p string) (string, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file; remove it to generate a new API token", p)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s may be read by other users (mode %v): run chmod 600 on it, or remove it to generate a new API token", p, fi.Mode().Perm())
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < 16 {
		return "", fmt.Errorf("%s holds no usable API token; remove it to generate a new one", p)
	}
	return tok, nil
}

// authenticator checks the server token and issues the dashboard's session
// cookies, which are stateless: an expiry and its HMAC under a key derived
// from the token, so they survive restarts and die with a new token.
type authenticator struct {
	tokenSum   [32]byte
	key        []byte
	cookieName string
	ttl        time.Duration
	secure     bool
	now        func() time.Time
}

// newAuthenticator: publicURL names the cookie (not the token: the name is
// public, in the OpenAPI document).
func newAuthenticator(token, publicURL string, ttl time.Duration) *authenticator {
	key := hmac.New(sha256.New, []byte(token))
	key.Write([]byte("catalyst session cookie key v1"))
	name := sha256.Sum256([]byte("catalyst session cookie name\x00" + publicURL))
	if ttl <= 0 {
		ttl = time.Hour
	}
	return &authenticator{
		tokenSum: sha256.Sum256([]byte(token)),
		key:      key.Sum(nil),
		// Cookies ignore ports: two servers on localhost must not
		// overwrite each other's session.
		cookieName: "catalyst_session_" + hex.EncodeToString(name[:4]),
		ttl:        ttl,
		secure:     strings.HasPrefix(publicURL, "https://"),
		now:        time.Now,
	}
}

// checkToken compares in constant time (digests: no length leak either).
func (a *authenticator) checkToken(tok string) bool {
	if tok == "" {
		return false
	}
	sum := sha256.Sum256([]byte(tok))
	return subtle.ConstantTimeCompare(sum[:], a.tokenSum[:]) == 1
}

func (a *authenticator) mac(exp string) string {
	m := hmac.New(sha256.New, a.key)
	m.Write([]byte("session\x00" + exp))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// setSession gives the browser a session cookie valid for ttl.
func (a *authenticator) setSession(w http.ResponseWriter, r *http.Request) {
	exp := strconv.FormatInt(a.now().Add(a.ttl).Unix(), 10)
	http.SetCookie(w, &http.Cookie{
		Name:     a.cookieName,
		Value:    exp + "." + a.mac(exp),
		Path:     "/",
		MaxAge:   int(a.ttl / time.Second),
		HttpOnly: true,
		SameSite: http.SameSiteStrictMode,
		Secure:   a.secure || r.TLS != nil,
	})
}

// session reports whether r carries a valid session cookie, and whether it
// is past half its life (the caller renews it: SESSION_TIMEOUT is idle time).
func (a *authenticator) session(r *http.Request) (valid, renew bool) {
	c, err := r.Cookie(a.cookieName)
	if err != nil {
		return false, false
	}
	exp, mac, ok := strings.Cut(c.Value, ".")
	if !ok || !hmac.Equal([]byte(mac), []byte(a.mac(exp))) {
		return false, false
	}
	sec, err := strconv.ParseInt(exp, 10, 64)
	if err != nil {
		return false, false
	}
	left := time.Unix(sec, 0).Sub(a.now())
	if left <= 0 {
		return false, false
	}
	return true, left < a.ttl/2
}

// credential is what a request presented.
type credential int

const (
	credNone        credential = iota
	credCookie                 // the session cookie: ambient, first-party only
	credToken                  // Bearer header or access_token: proof on its own
	credInvalid                // something was presented and it is wrong
	credUnavailable            // the store could not say (503, not 401)
)

// identity is who a valid credential authenticates: the server token's
// local admin, or a user by session or API key.
type identity struct {
	actor     tasks.Actor
	user      *domain.User
	sessionID string
	keyID     string
}

var localIdentity = identity{actor: tasks.Local()}

// credentialOf reads r's credential. A wrong token is credInvalid even when
// a valid cookie comes with it: the client meant the token. The cookie is
// only looked at on first-party requests (firstParty): on others the
// browser attached it for another page.
func (s *server) credentialOf(r *http.Request, firstParty bool) (c credential, renew bool, id identity) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "Bearer") {
			return credInvalid, false, id
		}
		c, id = s.tokenCredential(r, strings.TrimSpace(tok))
		return c, false, id
	}
	if q := r.URL.Query(); q.Has(accessTokenParam) {
		c, id = s.tokenCredential(r, q.Get(accessTokenParam))
		return c, false, id
	}
	if !firstParty {
		return credNone, false, id
	}
	if ck, err := r.Cookie(s.auth.cookieName); err == nil && strings.HasPrefix(ck.Value, accounts.SessionPrefix) {
		if s.accounts == nil {
			return credNone, false, id
		}
		switch c, id := s.userCredential(r, ck.Value); c {
		case credToken:
			return credCookie, false, id
		case credInvalid:
			return credNone, false, id // an expired session is simply no session
		default:
			return c, false, id
		}
	}
	if valid, renew := s.auth.session(r); valid {
		return credCookie, renew, localIdentity
	}
	return credNone, false, id
}

// tokenCredential checks a token given explicitly: the server token first
// (constant time), then a user's session token or API key.
func (s *server) tokenCredential(r *http.Request, tok string) (credential, identity) {
	if s.auth.checkToken(tok) {
		return credToken, localIdentity
	}
	if s.accounts == nil {
		return credInvalid, identity{}
	}
	return s.userCredential(r, tok)
}

func (s *server) userCredential(r *http.Request, tok string) (credential, identity) {
	p, err := s.accounts.Authenticate(r.Context(), tok)
	switch {
	case errors.Is(err, accounts.ErrBadCredentials):
		return credInvalid, identity{}
	case err != nil:
		s.log.ErrorContext(r.Context(), "authentication failed", slog.Any("err", err))
		return credUnavailable, identity{}
	}
	u := p.User
	return credToken, identity{
		actor:     tasks.Actor{Kind: tasks.ActorUser, ID: u.ID, Name: u.Name, Admin: u.Role == domain.RoleAdmin},
		user:      &u,
		sessionID: p.SessionID,
		keyID:     p.APIKeyID,
	}
}

// routeClass says what a path needs.
type routeClass int

const (
	routePublic routeClass = iota // dashboard files, docs, OpenAPI, preview redirects
	routeOpen                     // health and metrics: open to first-party loopback clients
	routeAPI                      // everything else: the credential
	routeSignIn                   // sign-in and sign-up: no credential, first-party or script only
)

// signInPaths answer without a credential: they are how one is obtained.
var signInPaths = map[string]bool{"/api/auth/login": true, "/api/auth/register": true, "/api/auth/config": true}

func classify(r *http.Request) routeClass {
	// The mux never serves an unclean path (it redirects), so deciding on
	// the clean one cannot be bypassed with /docs/../api/.
	p := path.Clean("/" + r.URL.Path)
	switch {
	case p == "/api/health" || p == "/metrics":
		return routeOpen
	case signInPaths[p]:
		return routeSignIn
	case p == "/api" || strings.HasPrefix(p, "/api/") || strings.HasPrefix(p, "/ws/") || p == "/ws" ||
		strings.HasPrefix(p, "/apps/"): // preview redirects mint a grant for the actor
		return routeAPI
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		return routeAPI
	}
	return routePublic
}

// firstParty reports whether a browser request comes from the dashboard's
// own origin (or is not from a browser page at all). Sec-Fetch-Site cannot
// be set by a page; when the browser sends it, it decides. Otherwise the
// Origin must be absent or ours. Origin "null" (sandboxed frames, previews,
// file: pages) is never first-party.
func (s *server) firstParty(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "null" {
		return false
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin", "none":
		return true
	case "":
		return origin == "" || s.ownOrigin(origin, r)
	default: // same-site (another port of localhost, the previews), cross-site
		return false
	}
}

// ownOrigin: the origin the request was sent to, or the public URL's.
func (s *server) ownOrigin(origin string, r *http.Request) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	return strings.EqualFold(u.Host, r.Host) || sameOrigin(origin, s.cfg.PublicURL)
}

// foreignOriginAllowed decides a request from another origin before its
// credential is looked at: never from an opaque origin or a preview, else
// as CORS_ORIGINS says. Refused requests are not executed at all, whatever
// the browser would have shown the page.
func (s *server) foreignOriginAllowed(r *http.Request) (bool, string) {
	origin := r.Header.Get("Origin")
	switch {
	case origin == "":
		// A no-cors GET or a navigation from another site: nothing to
		// check here; the cookie will not count, only the token.
		return true, ""
	case origin == "null":
		return false, "requests from an opaque origin (Origin: null: a sandboxed page, a preview, a file) are refused"
	case s.cfg.PreviewURL != "" && sameOrigin(origin, s.cfg.PreviewURL):
		return false, "requests from the preview origin " + origin + " are refused: generated apps never call the API"
	case !s.corsAllowed(origin):
		return false, "origin " + origin + " is not allowed by CORS_ORIGINS"
	}
	return true, ""
}

// guard enforces the credential, the origin rules and JSON bodies; it runs
// inside the Host check and CORS (preflights carry no credential).
func (s *server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r, _ = withState(r)
		if (r.Method == http.MethodGet || r.Method == http.MethodHead) && (r.URL.Path == "/" || r.URL.Path == "/login") {
			if r.URL.Query().Has("token") {
				s.signIn(w, r)
				return
			}
			if r.URL.Path == "/login" {
				http.Redirect(w, r, "/", http.StatusSeeOther)
				return
			}
		}
		class := classify(r)
		if class == routePublic {
			next.ServeHTTP(w, r)
			return
		}
		firstParty := s.firstParty(r)
		st := stateOf(r.Context())
		st.firstParty = firstParty
		if class == routeSignIn {
			// A page of another origin must not sign the user in or up
			// (login CSRF: the victim would work in the attacker's
			// account), whatever CORS_ORIGINS says; scripts send no
			// Origin and are first-party.
			if !firstParty {
				writeProblem(w, http.StatusForbidden, "cross-origin request refused: sign-in and sign-up are only accepted from the dashboard's own origin or from scripts")
				return
			}
			if mutating(r.Method) && !jsonContentType(r.Header.Get("Content-Type")) {
				writeProblem(w, http.StatusUnsupportedMediaType,
					"requests that change something must declare their body as Content-Type: application/json (even an empty one)")
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		if !firstParty {
			if ok, why := s.foreignOriginAllowed(r); !ok {
				writeProblem(w, http.StatusForbidden, "cross-origin request refused: "+why)
				return
			}
		}
		cred, renew, id := s.credentialOf(r, firstParty)
		switch cred {
		case credInvalid:
			s.unauthorized(w, "the token given is not valid (not this server's API token, nor a live session or API key)")
			return
		case credUnavailable:
			writeProblem(w, http.StatusServiceUnavailable, "credentials cannot be checked now (the store does not answer); try again")
			return
		case credNone:
			if class == routeOpen && firstParty && loopbackClient(r) {
				r = r.WithContext(withActor(r.Context(), loopbackScraper))
				break
			}
			s.unauthorized(w, "this request needs a credential")
			return
		}
		if mutating(r.Method) && !jsonContentType(r.Header.Get("Content-Type")) {
			writeProblem(w, http.StatusUnsupportedMediaType,
				"requests that change something must declare their body as Content-Type: application/json (even an empty one)")
			return
		}
		if cred == credCookie && renew {
			s.auth.setSession(w, r)
		}
		if cred != credNone {
			st.id = id
			r = r.WithContext(withActor(r.Context(), id.actor))
		}
		next.ServeHTTP(w, withoutAccessToken(r))
	})
}

func (s *server) unauthorized(w http.ResponseWriter, why string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="catalyst"`)
	writeProblem(w, http.StatusUnauthorized, why+": sign in (POST /api/auth/login, or the link `catalyst serve` printed), "+
		"or send Authorization: Bearer <token> (a session token, an API key, or the server token: CATALYST_API_TOKEN or the file "+TokenFile+" in the data directory)")
}

// signIn turns the sign-in link (/?token=... or /login?token=...) into a
// session cookie and drops the token from the address bar and history.
func (s *server) signIn(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	if !s.auth.checkToken(r.URL.Query().Get("token")) {
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, signInFailedPage)
		return
	}
	s.auth.setSession(w, r)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

var signInFailedPage = `<!doctype html><html lang="en"><meta charset="utf-8"><title>Catalyst: sign-in link not valid</title>` +
	`<h1>This sign-in link is not valid for this server</h1>` +
	`<p>Open the link that <code>catalyst serve</code> printed when it started ` +
	html.EscapeString("(http://localhost:8001/?token=...)") + `. A new token (a changed CATALYST_API_TOKEN, ` +
	`or a removed api_token file) makes older links invalid.</p><p><a href="/">Back to the dashboard</a></p></html>`

func mutating(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// jsonContentType accepts application/json and application/*+json: media
// types a page cannot send without a CORS preflight (no-cors requests are
// limited to text/plain, form and multipart bodies).
func jsonContentType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")
}

// withoutAccessToken removes the token from the URL handlers see, so that
// nothing (Link headers, redirects, logs) can echo it.
func withoutAccessToken(r *http.Request) *http.Request {
	q := r.URL.Query()
	if !q.Has(accessTokenParam) {
		return r
	}
	q.Del(accessTokenParam)
	r2 := r.Clone(r.Context())
	r2.URL.RawQuery = q.Encode()
	r2.RequestURI = r2.URL.RequestURI()
	return r2
}

func loopbackClient(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// sameOrigin compares two absolute URLs by scheme, host and port (default
// ports made explicit).
func sameOrigin(a, b string) bool {
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	if err1 != nil || err2 != nil || ua.Host == "" || ub.Host == "" {
		return false
	}
	return strings.EqualFold(ua.Scheme, ub.Scheme) && strings.EqualFold(explicitHostPort(ua), explicitHostPort(ub))
}

func explicitHostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	port := "80"
	if strings.EqualFold(u.Scheme, "https") {
		port = "443"
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// hostGuard answers only to the configured host names, on HTTP and
// WebSocket alike: a DNS-rebinding page (evil.test resolving to 127.0.0.1)
// reaches this server with Host: evil.test and gets nothing.
func hostGuard(allowed []string, next http.Handler) http.Handler {
	set := make(map[string]bool, len(allowed))
	for _, h := range allowed {
		set[strings.ToLower(strings.Trim(h, "[]"))] = true
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for h := range set {
			if !yield(h) {
				return
			}
		}
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := requestHost(r.Host)
		if host == "" || !set[host] {
			shown := host
			if len(shown) > 100 {
				shown = shown[:100] + "…"
			}
			writeProblem(w, http.StatusMisdirectedRequest, fmt.Sprintf(
				"this server does not answer to the host name %q (it answers to %s); add it to CATALYST_ALLOWED_HOSTS if it is yours",
				shown, strings.Join(names, ", ")))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// requestHost is the Host header's name without port, lower case.
func requestHost(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	return strings.ToLower(strings.Trim(h, "[]"))
}

// allowedHosts are the loopback names, the bind address when it is a
// specific one, the hosts of the public and preview URLs and
// CATALYST_ALLOWED_HOSTS.
func allowedHosts(cfgHosts []string, bind string, urls ...string) []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if ip := net.ParseIP(bind); ip != nil && !ip.IsUnspecified() {
		hosts = append(hosts, ip.String())
	}
	for _, u := range urls {
		if pu, err := url.Parse(u); err == nil && pu.Hostname() != "" {
			hosts = append(hosts, pu.Hostname())
		}
	}
	return append(hosts, cfgHosts...)
}

// documentSecurity declares the credential in the OpenAPI document: every
// operation needs one of the three forms of the token, except the health
// check (open to loopback clients) and the previews (their own origin).
func (s *server) documentSecurity(oapi *huma.OpenAPI) {
	if oapi.Components == nil {
		oapi.Components = &huma.Components{}
	}
	if oapi.Components.SecuritySchemes == nil {
		oapi.Components.SecuritySchemes = map[string]*huma.SecurityScheme{}
	}
	schemes := oapi.Components.SecuritySchemes
	schemes["bearer"] = &huma.SecurityScheme{Type: "http", Scheme: "bearer",
		Description: "The server token: CATALYST_API_TOKEN, or the file " + TokenFile + " in the data directory (printed in the sign-in link of `catalyst serve`)."}
	schemes["session"] = &huma.SecurityScheme{Type: "apiKey", In: "cookie", Name: s.auth.cookieName,
		Description: "The dashboard's session cookie, set by the sign-in link (/?token=...); only counts on requests from the dashboard's own origin."}
	schemes["access_token"] = &huma.SecurityScheme{Type: "apiKey", In: "query", Name: accessTokenParam,
		Description: "The server token as a query parameter, for clients that cannot set headers (browser WebSocket, EventSource)."}
	oapi.Security = []map[string][]string{{"bearer": {}}, {"session": {}}, {"access_token": {}}}
	open := []map[string][]string{{}}
	for p, item := range oapi.Paths {
		if p == "/api/health" && item.Get != nil {
			item.Get.Security = append(open, oapi.Security...)
		}
		if strings.HasPrefix(p, "/apps/") && item.Get != nil {
			item.Get.Security = open
		}
	}
}
