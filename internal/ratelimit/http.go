package ratelimit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/netip"
	"path"
	"strconv"
	"strings"
	"time"
)

// Scopes of a refused request.
const (
	ScopeClient = "client"      // CATALYST_RATE_LIMIT per client address
	ScopeUser   = "user"        // CATALYST_RATE_LIMIT per signed-in user
	ScopeLogin  = "login"       // CATALYST_LOGIN_RATE_LIMIT per client address
	ScopeTarget = "login_email" // CATALYST_LOGIN_RATE_LIMIT per e-mail address tried
)

// Event describes a refused request, for the audit trail and the log.
type Event struct {
	Scope string
	// Route is the method and path of a sign-in route, or the method alone
	// (other paths may hold ids; they are not repeated here).
	Route string
	// Client is the client's address (after trusted proxies).
	Client string
	// User is the signed-in user (ScopeUser).
	User string
	// Email is the e-mail address a sign-in or sign-up named, as sent.
	Email string
	// RetryAfter is how long the client must wait.
	RetryAfter time.Duration
	// Failures counts the consecutive failed attempts of the client or
	// e-mail address that was refused (sign-in routes).
	Failures int
}

// Options configure a Limiter.
type Options struct {
	// PerMinute is the requests a client address, and a user, may send per
	// minute (CATALYST_RATE_LIMIT); 0 turns these limits off.
	PerMinute int
	// LoginPerMinute bounds POST /api/auth/login and /api/auth/register per
	// client and per e-mail address (CATALYST_LOGIN_RATE_LIMIT), with
	// growing delays after that many consecutive failures; 0: off.
	LoginPerMinute int
	// TrustedProxies are the peers whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// MaxKeys bounds the keys each limit holds (default 10000 per limit).
	MaxKeys int
	// MaxPenalty is the longest growing delay of sign-in (default 15m).
	MaxPenalty time.Duration
	// OnLimited is told about every refused request (audit, log, metrics).
	OnLimited func(r *http.Request, ev Event)
	// Deny writes the 429 answer; default: a problem+json body. It is
	// called after Retry-After is set.
	Deny func(w http.ResponseWriter, r *http.Request, detail string)
	// Now replaces time.Now (tests).
	Now func() time.Time
}

// LoginRoutes are the credential-guessing routes that get the strict limit.
var LoginRoutes = []string{"/api/auth/login", "/api/auth/register"}

// ProbeRoutes (uptime checks, scrapers) count against buckets of their
// own: a busy dashboard never makes the server look down to its monitor,
// and a monitor never eats the dashboard's allowance. They are limited all
// the same.
var ProbeRoutes = []string{"/api/health", "/metrics"}

// Limiter is the HTTP rate limiting of one server.
type Limiter struct {
	o                   Options
	client, user, probe *Keyed
	login, loginTargets *Keyed
}

// New returns the limits o describes.
func New(o Options) (*Limiter, error) {
	if o.PerMinute < 0 || o.LoginPerMinute < 0 {
		return nil, fmt.Errorf("ratelimit: rates must not be negative")
	}
	if o.MaxKeys <= 0 {
		o.MaxKeys = 10000
	}
	if o.MaxPenalty <= 0 {
		o.MaxPenalty = 15 * time.Minute
	}
	if o.Deny == nil {
		o.Deny = writeProblem
	}
	l := &Limiter{o: o}
	if o.PerMinute > 0 {
		l.client = NewKeyed(KeyedOptions{PerMinute: o.PerMinute, Max: o.MaxKeys, Now: o.Now})
		l.probe = NewKeyed(KeyedOptions{PerMinute: o.PerMinute, Max: o.MaxKeys, Now: o.Now})
		l.user = NewKeyed(KeyedOptions{PerMinute: o.PerMinute, Max: o.MaxKeys, Now: o.Now})
	}
	if o.LoginPerMinute > 0 {
		l.login = NewKeyed(KeyedOptions{PerMinute: o.LoginPerMinute, Max: o.MaxKeys, MaxPenalty: o.MaxPenalty, Now: o.Now})
		l.loginTargets = NewKeyed(KeyedOptions{PerMinute: o.LoginPerMinute, Max: o.MaxKeys, MaxPenalty: o.MaxPenalty, Now: o.Now})
	}
	return l, nil
}

// Stats reports the keys held and forgotten by every limit, for metrics.
func (l *Limiter) Stats() (keys int, evicted uint64) {
	for _, k := range []*Keyed{l.client, l.probe, l.user, l.login, l.loginTargets} {
		if k != nil {
			keys += k.Len()
			evicted += k.Evicted()
		}
	}
	return keys, evicted
}

// Clients limits every request per client address, and the sign-in routes
// per client and per e-mail address tried. It runs before authentication,
// so that floods and credential guessing are refused before they cost a
// password hash or a database read.
func (l *Limiter) Clients(next http.Handler) http.Handler {
	if l.client == nil && l.login == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		client := ClientKey(ClientAddr(r, l.o.TrustedProxies))
		if l.client != nil {
			bucket := l.client
			if isRoute(r.URL.Path, ProbeRoutes) {
				bucket = l.probe
			}
			if ok, wait := bucket.Allow(client); !ok {
				l.deny(w, r, Event{Scope: ScopeClient, Route: r.Method, Client: client, RetryAfter: wait},
					"too many requests from this client address")
				return
			}
		}
		if l.login != nil && r.Method == http.MethodPost && isRoute(r.URL.Path, LoginRoutes) {
			l.signIn(w, r, client, next)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func isRoute(p string, routes []string) bool {
	p = path.Clean("/" + p)
	for _, r := range routes {
		if p == r {
			return true
		}
	}
	return false
}

// signIn applies the sign-in limits: a token per attempt from the client's
// and the e-mail address's buckets, and growing delays once either has
// failed LoginPerMinute times in a row. The e-mail bucket stops a run
// spread over many addresses against one account; the client bucket a run
// from one address against many accounts.
func (l *Limiter) signIn(w http.ResponseWriter, r *http.Request, client string, next http.Handler) {
	route := r.Method + " " + path.Clean(r.URL.Path)
	email := peekEmail(r)
	if len(email) > maxEmail {
		email = email[:maxEmail] // the audit trail keeps no megabyte "address"
	}
	target := ""
	if email != "" {
		target = emailKey(email)
	}
	if ok, wait := l.login.Allow(client); !ok {
		l.deny(w, r, Event{Scope: ScopeLogin, Route: route, Client: client, Email: email, RetryAfter: wait,
			Failures: l.login.Failures(client)}, "too many sign-in attempts from this client address")
		return
	}
	if target != "" {
		if ok, wait := l.loginTargets.Allow(target); !ok {
			l.deny(w, r, Event{Scope: ScopeTarget, Route: route, Client: client, Email: email, RetryAfter: wait,
				Failures: l.loginTargets.Failures(target)}, "too many sign-in attempts for this e-mail address")
			return
		}
	}
	sw := &statusWriter{ResponseWriter: w}
	next.ServeHTTP(sw, r)
	switch {
	case sw.status >= 200 && sw.status < 300:
		// The client's failures stay: one right password must not wash
		// away a run against other accounts.
		if target != "" {
			l.loginTargets.Succeed(target)
		}
	case sw.status >= 400 && sw.status != http.StatusTooManyRequests:
		l.login.Fail(client)
		if target != "" {
			l.loginTargets.Fail(target)
		}
	}
}

// Users limits requests per signed-in user; user returns "" for requests
// that are not a user's (they are limited per client only). It runs after
// authentication, which knows the user.
func (l *Limiter) Users(user func(*http.Request) string, next http.Handler) http.Handler {
	if l.user == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id := user(r); id != "" {
			if ok, wait := l.user.Allow(id); !ok {
				l.deny(w, r, Event{Scope: ScopeUser, Route: r.Method, User: id,
					Client: ClientKey(ClientAddr(r, l.o.TrustedProxies)), RetryAfter: wait},
					"too many requests from this account")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (l *Limiter) deny(w http.ResponseWriter, r *http.Request, ev Event, detail string) {
	if l.o.OnLimited != nil {
		l.o.OnLimited(r, ev)
	}
	secs := int64(math.Ceil(ev.RetryAfter.Seconds()))
	if secs < 1 {
		secs = 1
	}
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	l.o.Deny(w, r, fmt.Sprintf("%s: retry in %d s", detail, secs))
}

// writeProblem is the default 429: RFC 9457 problem+json.
func writeProblem(w http.ResponseWriter, _ *http.Request, detail string) {
	b, _ := json.Marshal(map[string]any{
		"title": http.StatusText(http.StatusTooManyRequests), "status": http.StatusTooManyRequests, "detail": detail,
	})
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(http.StatusTooManyRequests)
	_, _ = w.Write(b)
}

// maxPeek bounds the sign-in body read ahead for its e-mail address; the
// handler still reads the whole body (and applies its own size limit).
const maxPeek = 64 << 10

// maxEmail is the longest e-mail address (RFC 5321 path limit) an Event carries.
const maxEmail = 254

// peekEmail reads the "email" field of a sign-in body and puts the body back.
func peekEmail(r *http.Request) string {
	if r.Body == nil {
		return ""
	}
	head, err := io.ReadAll(io.LimitReader(r.Body, maxPeek))
	r.Body = readCloser{io.MultiReader(bytes.NewReader(head), r.Body), r.Body}
	if err != nil {
		return ""
	}
	var body struct {
		Email string `json:"email"`
	}
	if json.Unmarshal(head, &body) != nil {
		return ""
	}
	return body.Email
}

type readCloser struct {
	io.Reader
	io.Closer
}

// emailKey folds the spellings of one address together (case, spaces) and
// keeps only a digest in memory: the buckets hold no e-mail addresses.
func emailKey(email string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(email))))
	return hex.EncodeToString(sum[:16])
}

// statusWriter records the status of a sign-in answer.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
