package netpolicy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

// fakeDNS answers chosen addresses for names, like an attacker's DNS server.
type fakeDNS map[string][]string

func (f fakeDNS) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, s := range f[host] {
		out = append(out, netip.MustParseAddr(s))
	}
	if out == nil {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return out, nil
}

func TestDefaultRefusesNonPublicAddresses(t *testing.T) {
	p := New(Options{})
	for _, s := range []string{
		"127.0.0.1", "127.1.2.3", "::1", "0.0.0.0", "::", "10.1.2.3", "172.16.0.1", "172.31.255.255",
		"192.168.1.1", "100.64.0.1", "100.127.255.255", "169.254.169.254", "169.254.0.1", "fe80::1",
		"fc00::1", "fd12:3456::1", "fd00:ec2::254", "::ffff:127.0.0.1", "::ffff:169.254.169.254",
		"::ffff:10.0.0.1", "224.0.0.1", "255.255.255.255",
	} {
		if err := p.CheckAddr(netip.MustParseAddr(s)); !errors.Is(err, ErrRefused) {
			t.Errorf("%s: got %v, want ErrRefused", s, err)
		}
	}
	for _, s := range []string{"140.82.112.3", "8.8.8.8", "2606:4700::1111", "100.128.0.1", "172.32.0.1"} {
		if err := p.CheckAddr(netip.MustParseAddr(s)); err != nil {
			t.Errorf("%s: public address refused: %v", s, err)
		}
	}
}

func TestOptInsAreNarrow(t *testing.T) {
	lo := New(Options{AllowLoopback: true})
	if err := lo.CheckAddr(netip.MustParseAddr("127.0.0.1")); err != nil {
		t.Errorf("loopback allowance refused loopback: %v", err)
	}
	for _, s := range []string{"169.254.169.254", "10.0.0.1", "::ffff:192.168.0.1"} {
		if err := lo.CheckAddr(netip.MustParseAddr(s)); !errors.Is(err, ErrRefused) {
			t.Errorf("loopback allowance let %s through", s)
		}
	}
	all := New(Options{AllowPrivate: true})
	for _, s := range []string{"169.254.169.254", "10.0.0.1", "127.0.0.1"} {
		if err := all.CheckAddr(netip.MustParseAddr(s)); err != nil {
			t.Errorf("AllowPrivate refused %s: %v", s, err)
		}
	}
}

func TestCheckURL(t *testing.T) {
	p := New(Options{Resolver: fakeDNS{
		"github.com":        {"140.82.112.3"},
		"rebind.attacker":   {"127.0.0.1"},
		"mixed.attacker":    {"10.0.0.5"},
		"metadata.attacker": {"169.254.169.254"},
	}})
	ctx := context.Background()
	for _, ok := range []string{"https://github.com/a/b", "http://github.com/a", "ssh://git@github.com/a/b.git", "git://github.com/a/b", "git@github.com:a/b.git"} {
		if _, err := p.CheckURL(ctx, ok); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"file:///etc/passwd", "ext::sh -c id", "ftp://github.com/x", "gopher://github.com/", "/etc/passwd", "javascript:alert(1)"} {
		if _, err := p.CheckURL(ctx, bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	for _, bad := range []string{"http://169.254.169.254/latest/meta-data/", "http://rebind.attacker/", "https://mixed.attacker/x",
		"http://metadata.attacker/", "http://[::ffff:7f00:1]/", "http://0.0.0.0:8001/", "git@rebind.attacker:a/b", "http://localhost.:80/"} {
		if _, err := p.CheckURL(ctx, bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	// The real resolver: localhost resolves to loopback and is refused.
	if _, err := New(Options{}).CheckURL(ctx, "http://localhost:1/"); !errors.Is(err, ErrRefused) {
		t.Errorf("localhost: got %v, want ErrRefused", err)
	}
	// A password in a refused URL never reaches the message.
	if _, err := p.CheckURL(ctx, "ftp://user:hunter2secret@github.com/"); err == nil || strings.Contains(err.Error(), "hunter2secret") {
		t.Errorf("error %v", err)
	}
}

// The client refuses at dial time, so a name that resolved to a public
// address when someone checked it but answers loopback now cannot pass.
func TestHTTPClientRefusesAtDialAndOnRedirect(t *testing.T) {
	hits := 0
	internal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		w.Write([]byte("internal secret"))
	}))
	defer internal.Close()
	_, port, _ := net.SplitHostPort(internal.Listener.Addr().String())

	strict := New(Options{Resolver: fakeDNS{"rebind.attacker": {"127.0.0.1"}}})
	c := strict.HTTPClient(0)
	if _, err := c.Get(internal.URL); !errors.Is(err, ErrRefused) {
		t.Fatalf("direct loopback: got %v, want ErrRefused", err)
	}
	if _, err := c.Get("http://rebind.attacker:" + port + "/"); !errors.Is(err, ErrRefused) {
		t.Fatalf("name resolving to loopback: got %v, want ErrRefused", err)
	}

	// A public-looking server (allowed through the test-only loopback
	// allowance) redirects to the metadata address and to a private one.
	lo := New(Options{AllowLoopback: true, Resolver: fakeDNS{"internal.corp": {"10.0.0.7"}}})
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/meta":
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/iam/", http.StatusFound)
		case "/corp":
			http.Redirect(w, r, "http://internal.corp/", http.StatusMovedPermanently)
		case "/file":
			http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
		default:
			w.Write([]byte("ok"))
		}
	}))
	defer redirector.Close()
	lc := lo.HTTPClient(0)
	for _, path := range []string{"/meta", "/corp"} {
		if _, err := lc.Get(redirector.URL + path); !errors.Is(err, ErrRefused) {
			t.Errorf("redirect %s: got %v, want ErrRefused", path, err)
		}
	}
	if _, err := lc.Get(redirector.URL + "/file"); err == nil {
		t.Errorf("redirect to file: accepted")
	}
	resp, err := lc.Get(redirector.URL + "/")
	if err != nil {
		t.Fatalf("allowed request failed: %v", err)
	}
	resp.Body.Close()
	if hits != 0 {
		t.Fatalf("the internal server was reached %d times", hits)
	}
}

func TestControlChecksTheDialledAddress(t *testing.T) {
	p := New(Options{})
	if err := p.Control("tcp", "127.0.0.1:22", nil); !errors.Is(err, ErrRefused) {
		t.Errorf("got %v", err)
	}
	if err := p.Control("tcp", "[fe80::1%eth0]:22", nil); !errors.Is(err, ErrRefused) {
		t.Errorf("link-local with zone: got %v", err)
	}
	if err := p.Control("tcp", "140.82.112.3:443", nil); err != nil {
		t.Errorf("public: %v", err)
	}
}
