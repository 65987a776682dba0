// Package netpolicy decides which network addresses the Explorer may reach.
// The Explorer fetches URLs a user typed (a repository, a Jira or ServiceNow
// instance) and follows redirects chosen by those servers, so without a
// policy it would be a server-side request forgery tool aimed at the host's
// loopback services, the cloud metadata endpoint and the company network.
//
// Addresses are checked after DNS resolution, at dial time, and the checked
// address is the one dialled: a name that resolves to a public address when
// checked and to 127.0.0.1 a moment later (DNS rebinding) cannot pass.
// Redirects are checked too (scheme and host), and dialled through the same
// guard.
package netpolicy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

var (
	// ErrRefused: the address is loopback, link-local, private or otherwise
	// not public, and private addresses were not allowed.
	ErrRefused = errors.New("netpolicy: address not allowed")
	// ErrScheme: the URL's scheme is not http, https, ssh or git.
	ErrScheme = errors.New("netpolicy: scheme not allowed")
)

// Resolver is the part of *net.Resolver the policy uses; tests substitute
// one that answers a chosen address for a name.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Options configures a Policy. The zero value is the strict default.
type Options struct {
	// AllowPrivate lets every address through
	// (CATALYST_EXPLORER_ALLOW_PRIVATE=true: self-hosted GitLab, Jira or
	// ServiceNow on a company network).
	AllowPrivate bool
	// AllowLoopback lets 127.0.0.0/8 and ::1 through and nothing else that
	// is private. It exists for tests, whose servers listen on loopback;
	// no configuration variable sets it.
	AllowLoopback bool
	// Resolver replaces net.DefaultResolver.
	Resolver Resolver
	// DialTimeout bounds one connection attempt (default 10 s).
	DialTimeout time.Duration
}

// Policy checks URLs, host names and addresses. Safe for concurrent use.
type Policy struct{ o Options }

// New returns a policy.
func New(o Options) *Policy {
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 10 * time.Second
	}
	return &Policy{o: o}
}

// AllowsPrivate reports whether the policy lets private addresses through.
func (p *Policy) AllowsPrivate() bool { return p.o.AllowPrivate }

var blocked = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8",         // "this network"; 0.0.0.0 reaches local services
		"10.0.0.0/8",        // RFC 1918
		"100.64.0.0/10",     // CGNAT, often internal
		"127.0.0.0/8",       // loopback
		"169.254.0.0/16",    // link-local, cloud metadata (169.254.169.254)
		"172.16.0.0/12",     // RFC 1918
		"192.0.0.0/24",      // IETF protocol assignments
		"192.0.2.0/24",      // documentation
		"192.168.0.0/16",    // RFC 1918
		"198.18.0.0/15",     // benchmarking
		"198.51.100.0/24",   // documentation
		"203.0.113.0/24",    // documentation
		"224.0.0.0/4",       // multicast
		"240.0.0.0/4",       // reserved, broadcast
		"::/128",            // unspecified
		"::1/128",           // loopback
		"64:ff9b::/96",      // NAT64: embeds an IPv4 address
		"64:ff9b:1::/48",    // local-use NAT64
		"100::/64",          // discard
		"2001:db8::/32",     // documentation
		"2002::/16",         // 6to4: embeds an IPv4 address
		"fc00::/7",          // unique local
		"fe80::/10",         // link-local
		"fec0::/10",         // site-local (deprecated, still routed internally)
		"ff00::/8",          // multicast
		"fd00:ec2::254/128", // AWS metadata over IPv6 (inside fc00::/7; named for the record)
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// CheckAddr refuses an address the policy does not allow.
func (p *Policy) CheckAddr(a netip.Addr) error {
	if !a.IsValid() {
		return fmt.Errorf("%w: invalid address", ErrRefused)
	}
	a = a.Unmap() // ::ffff:127.0.0.1 is 127.0.0.1
	if p.o.AllowPrivate {
		return nil
	}
	if p.o.AllowLoopback && a.IsLoopback() {
		return nil
	}
	a = a.WithZone("")
	for _, b := range blocked {
		if b.Contains(a) {
			return fmt.Errorf("%w: %s is in %s (set CATALYST_EXPLORER_ALLOW_PRIVATE=true to reach private networks)", ErrRefused, a, b)
		}
	}
	return nil
}

// Resolve resolves host (a name or a literal address) and returns the
// addresses the policy allows, or an error naming a refused one when none is
// allowed.
func (p *Policy) Resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "" {
		return nil, fmt.Errorf("%w: empty host", ErrRefused)
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		addrs, err = p.o.Resolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return nil, fmt.Errorf("netpolicy: resolve %q: %w", host, err)
		}
	}
	var ok []netip.Addr
	var firstErr error
	for _, a := range addrs {
		if err := p.CheckAddr(a); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		ok = append(ok, a.Unmap())
	}
	if len(ok) == 0 {
		if firstErr == nil {
			firstErr = fmt.Errorf("%w: %q resolves to no address", ErrRefused, host)
		}
		return nil, fmt.Errorf("host %q: %w", host, firstErr)
	}
	return ok, nil
}

// schemes the Explorer may use. file:, ext:: and the like would read the
// server's own disk or run commands.
var schemes = map[string]bool{"http": true, "https": true, "ssh": true, "git": true}

// CheckURL parses raw, checks its scheme and resolves and checks its host.
// It accepts scp-like git addresses (git@host:owner/repo).
func (p *Policy) CheckURL(ctx context.Context, raw string) (*url.URL, error) {
	u, err := ParseURL(raw)
	if err != nil {
		return nil, err
	}
	if _, err := p.Resolve(ctx, u.Hostname()); err != nil {
		return nil, err
	}
	return u, nil
}

// ParseURL parses a URL a user typed and checks its scheme only. An
// scp-like address (user@host:path) becomes ssh://user@host/path.
func ParseURL(raw string) (*url.URL, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return nil, errors.New("netpolicy: empty URL")
	}
	if !strings.Contains(raw, "://") {
		if at, colon := strings.Index(raw, "@"), strings.Index(raw, ":"); colon > 0 && (at < 0 || at < colon) && !strings.Contains(raw[:colon], "/") {
			raw = "ssh://" + raw[:colon] + "/" + strings.TrimPrefix(raw[colon+1:], "/")
		} else {
			return nil, fmt.Errorf("%w: %q has no scheme", ErrScheme, Redact(raw))
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("netpolicy: invalid URL %q", Redact(raw))
	}
	u.Scheme = strings.ToLower(u.Scheme)
	if !schemes[u.Scheme] {
		return nil, fmt.Errorf("%w: %q (only http, https, ssh and git)", ErrScheme, u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("netpolicy: URL %q has no host", Redact(raw))
	}
	return u, nil
}

// Redact removes a password from a URL for messages.
func Redact(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "REDACTED")
		}
		return u.String()
	}
	return raw
}

// DialContext resolves the host of addr, checks every address and dials the
// first allowed one that answers. The dialled address is the checked one.
func (p *Policy) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("netpolicy: %w", err)
	}
	ips, err := p.Resolve(ctx, host)
	if err != nil {
		return nil, err
	}
	d := &net.Dialer{Timeout: p.o.DialTimeout, Control: p.Control}
	var lastErr error
	for _, ip := range ips {
		c, err := d.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
		if err == nil {
			return c, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

// Control is a net.Dialer Control hook: the last check, on the address the
// socket is about to connect to, whoever resolved it.
func (p *Policy) Control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %q", ErrRefused, address)
	}
	return p.CheckAddr(ap.Addr())
}

// maxRedirects bounds a redirect chain.
const maxRedirects = 10

// HTTPClient returns a client that dials through the policy, never uses a
// proxy from the environment (a proxy would resolve names itself), and
// checks every redirect's scheme and host. timeout bounds a whole request
// including reading the body (0: none; use a context).
func (p *Policy) HTTPClient(timeout time.Duration) *http.Client {
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           p.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          10,
		IdleConnTimeout:       30 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxRedirects {
				return fmt.Errorf("netpolicy: more than %d redirects", maxRedirects)
			}
			if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				return fmt.Errorf("%w: redirect to %q", ErrScheme, req.URL.Scheme)
			}
			if _, err := p.Resolve(req.Context(), req.URL.Hostname()); err != nil {
				return fmt.Errorf("redirect refused: %w", err)
			}
			return nil
		},
	}
}
