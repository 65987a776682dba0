package accounts

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/store/storetest/teststore"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newService(t *testing.T, mode SignupMode) (*Service, *clock) {
	t.Helper()
	c := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	s, err := New(Options{Store: teststore.Open(t, ""), SessionTimeout: 30 * time.Minute, Signup: mode,
		BcryptCost: bcrypt.MinCost, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

const pw = "correct horse battery"

func TestPasswordsBeyond72Bytes(t *testing.T) {
	// bcrypt alone reads 72 bytes: these two would both verify.
	common := strings.Repeat("a", 80)
	h, err := hashPassword(common+"1", bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	dummy, _ := hashPassword("dummy password", bcrypt.MinCost)
	if !verifyPassword(h, dummy, common+"1") {
		t.Fatal("the password itself does not verify")
	}
	if verifyPassword(h, dummy, common+"2") {
		t.Fatal("a password sharing the first 80 bytes verifies: the 72-byte truncation is back")
	}
	if verifyPassword(h, dummy, common) {
		t.Fatal("a prefix of the password verifies")
	}
	// Up to the policy's limit is accepted and exact.
	long := strings.Repeat("é", MaxPasswordBytes/2)
	if err := CheckPassword(long); err != nil {
		t.Fatalf("a %d-byte password is refused: %v", len(long), err)
	}
	h2, _ := hashPassword(long, bcrypt.MinCost)
	if !verifyPassword(h2, dummy, long) || verifyPassword(h2, dummy, long[:len(long)-2]+"e") {
		t.Fatal("long passwords are not compared in full")
	}
}

func TestPasswordPolicy(t *testing.T) {
	for _, c := range []struct {
		p  string
		ok bool
	}{
		{"short", false},
		{"123456789", false},
		{"1234567890", true},
		{"ééééééééé", false}, // 9 characters, 18 bytes
		{"éééééééééé", true},
		{strings.Repeat("x", MaxPasswordBytes), true},
		{strings.Repeat("x", MaxPasswordBytes+1), false},
		{"abcdefghij\xff", false},
	} {
		if err := CheckPassword(c.p); (err == nil) != c.ok {
			t.Errorf("CheckPassword(%.20q) = %v, want ok=%v", c.p, err, c.ok)
		}
	}
}

func TestEmailNormalised(t *testing.T) {
	for in, want := range map[string]string{
		"  Ada@Example.COM ":     "ada@example.com",
		"root@localhost":         "root@localhost",
		"Ada <ada@example.com>":  "",
		"ada@example.com, b@c.d": "",
		"no-at-sign":             "",
		"ada@nodot":              "",
		"":                       "",
	} {
		got, err := NormalizeEmail(in)
		if want == "" {
			if !errors.Is(err, domain.ErrInvalid) {
				t.Errorf("NormalizeEmail(%q) = %q, %v; want ErrInvalid", in, got, err)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("NormalizeEmail(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestFirstUserIsAdminThenPolicy(t *testing.T) {
	ctx := t.Context()
	for _, mode := range []SignupMode{SignupOpen, SignupInvite, SignupClosed} {
		t.Run(string(mode), func(t *testing.T) {
			s, _ := newService(t, mode)
			first, err := s.Register(ctx, Registration{Email: "Admin@Example.com", Password: pw})
			if err != nil || first.Role != domain.RoleAdmin || first.Email != "admin@example.com" {
				t.Fatalf("first registration = %+v, %v; want an admin", first, err)
			}
			second, err := s.Register(ctx, Registration{Email: "bob@example.com", Password: pw})
			switch mode {
			case SignupOpen:
				if err != nil || second.Role != domain.RoleUser {
					t.Fatalf("open sign-up: %+v, %v", second, err)
				}
			default:
				if !errors.Is(err, ErrSignupClosed) {
					t.Fatalf("%s sign-up without invite: %v, want ErrSignupClosed", mode, err)
				}
			}
			if _, err := s.Register(ctx, Registration{Email: "ADMIN@example.com ", Password: pw}); mode == SignupOpen && !errors.Is(err, ErrEmailTaken) {
				t.Fatalf("a taken address (other case): %v, want ErrEmailTaken", err)
			}
		})
	}
}

func TestInvites(t *testing.T) {
	ctx := t.Context()
	s, c := newService(t, SignupInvite)
	admin, _ := s.Register(ctx, Registration{Email: "admin@example.com", Password: pw})
	_, tok, err := s.CreateInvite(ctx, admin.ID, "")
	if err != nil || !strings.HasPrefix(tok, InvitePrefix) {
		t.Fatalf("CreateInvite: %q, %v", tok, err)
	}
	if _, err := s.Register(ctx, Registration{Email: "x@example.com", Password: pw, Invite: tok + "x"}); !errors.Is(err, ErrInvite) {
		t.Fatalf("a wrong invite: %v", err)
	}
	if _, err := s.Register(ctx, Registration{Email: "admin@example.com", Password: pw, Invite: tok}); !errors.Is(err, ErrEmailTaken) {
		t.Fatalf("a taken address with an invite: %v", err)
	}
	u, err := s.Register(ctx, Registration{Email: "bob@example.com", Password: pw, Invite: tok})
	if err != nil || u.Role != domain.RoleUser {
		t.Fatalf("register with the invite (after a taken-address attempt, which must not burn it): %+v, %v", u, err)
	}
	if _, err := s.Register(ctx, Registration{Email: "carol@example.com", Password: pw, Invite: tok}); !errors.Is(err, ErrInvite) {
		t.Fatalf("the invite used twice: %v", err)
	}
	// Bound to an address, and expiring.
	_, bound, _ := s.CreateInvite(ctx, admin.ID, "Dave@Example.com")
	if _, err := s.Register(ctx, Registration{Email: "eve@example.com", Password: pw, Invite: bound}); !errors.Is(err, ErrInvite) {
		t.Fatalf("an invite for another address: %v", err)
	}
	_, old, _ := s.CreateInvite(ctx, admin.ID, "")
	c.Add(8 * 24 * time.Hour)
	if _, err := s.Register(ctx, Registration{Email: "frank@example.com", Password: pw, Invite: old}); !errors.Is(err, ErrInvite) {
		t.Fatalf("an expired invite: %v", err)
	}
}

func TestLoginSessionsSlideAndExpire(t *testing.T) {
	ctx := t.Context()
	s, c := newService(t, SignupOpen)
	u, _ := s.Register(ctx, Registration{Email: "ada@example.com", Password: pw})

	for _, bad := range [][2]string{{"ada@example.com", pw + "x"}, {"nobody@example.com", pw}, {"ada@example.com", strings.Repeat("p", 5000)}} {
		if _, tok, _, err := s.Login(ctx, bad[0], bad[1], Client{}); !errors.Is(err, ErrBadCredentials) || tok != "" {
			t.Fatalf("Login(%q, …) = %q, %v; want ErrBadCredentials", bad[0], tok, err)
		}
	}
	_, tok, sess, err := s.Login(ctx, " ADA@example.com", pw, Client{UserAgent: strings.Repeat("u", 1000), RemoteAddr: "192.0.2.1"})
	if err != nil || !strings.HasPrefix(tok, SessionPrefix) {
		t.Fatalf("Login: %q, %v", tok, err)
	}
	if len(sess.UserAgent) > MaxUserAgent {
		t.Errorf("the session keeps a %d-byte user agent", len(sess.UserAgent))
	}
	if strings.Contains(sess.TokenHash, tok) || sess.TokenHash == tok {
		t.Fatal("the session stores its token")
	}
	// Used every 20 minutes, a 30-minute session lives on.
	for range 4 {
		c.Add(20 * time.Minute)
		p, err := s.Authenticate(ctx, tok)
		if err != nil || p.User.ID != u.ID || p.SessionID != sess.ID {
			t.Fatalf("an active session ended: %+v, %v", p, err)
		}
	}
	c.Add(30 * time.Minute)
	if _, err := s.Authenticate(ctx, tok); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("a session idle for the timeout still works: %v", err)
	}
	// Revocation.
	_, tok2, sess2, _ := s.Login(ctx, "ada@example.com", pw, Client{})
	if list, _ := s.Sessions(ctx, u.ID); len(list) != 1 || list[0].ID != sess2.ID {
		t.Fatalf("Sessions = %+v, want only the live one", list)
	}
	if err := s.Logout(ctx, u.ID, sess2.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, tok2); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("a logged-out session still works: %v", err)
	}
	for _, junk := range []string{"", "cats_", "catk_x", "random", SessionPrefix + strings.Repeat("A", 43)} {
		if _, err := s.Authenticate(ctx, junk); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("Authenticate(%q) = %v", junk, err)
		}
	}
}

func TestAPIKeys(t *testing.T) {
	ctx := t.Context()
	s, c := newService(t, SignupOpen)
	u, _ := s.Register(ctx, Registration{Email: "ada@example.com", Password: pw})
	other, _ := s.Register(ctx, Registration{Email: "bob@example.com", Password: pw})
	k, key, err := s.CreateAPIKey(ctx, u.ID, "ci", nil)
	if err != nil || !strings.HasPrefix(key, k.Prefix) || !strings.HasPrefix(key, APIKeyPrefix) {
		t.Fatalf("CreateAPIKey: %+v %q %v", k, key, err)
	}
	p, err := s.Authenticate(ctx, key)
	if err != nil || p.User.ID != u.ID || p.APIKeyID != k.ID {
		t.Fatalf("the key does not authenticate: %+v, %v", p, err)
	}
	c.Add(365 * 24 * time.Hour) // keys do not idle out
	if _, err := s.Authenticate(ctx, key); err != nil {
		t.Fatalf("a year-old key without expiry: %v", err)
	}
	if err := s.RevokeAPIKey(ctx, other.ID, k.ID); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("another user revoked the key: %v", err)
	}
	if err := s.RevokeAPIKey(ctx, u.ID, k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, key); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("a revoked key works: %v", err)
	}
	exp := c.Now().Add(time.Hour)
	_, key2, _ := s.CreateAPIKey(ctx, u.ID, "short", &exp)
	if _, err := s.Authenticate(ctx, key2); err != nil {
		t.Fatal(err)
	}
	c.Add(time.Hour)
	if _, err := s.Authenticate(ctx, key2); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("an expired key works: %v", err)
	}
	past := c.Now().Add(-time.Second)
	if _, _, err := s.CreateAPIKey(ctx, u.ID, "past", &past); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("a key expiring in the past: %v", err)
	}
	if _, _, err := s.CreateAPIKey(ctx, u.ID, "a\nb", nil); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("a two-line key name: %v", err)
	}
}

// TestUnknownEmailTakesAsLongAsWrongPassword compares the fastest of three
// tries at cost 6, where one comparison takes milliseconds: skipping it for
// unknown addresses would answer in microseconds.
func TestUnknownEmailTakesAsLongAsWrongPassword(t *testing.T) {
	ctx := t.Context()
	s, err := New(Options{Store: teststore.Open(t, ""), SessionTimeout: time.Hour, Signup: SignupOpen, BcryptCost: 6})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Register(ctx, Registration{Email: "ada@example.com", Password: pw}); err != nil {
		t.Fatal(err)
	}
	measure := func(email string) time.Duration {
		var best time.Duration
		for i := range 3 {
			start := time.Now()
			s.Login(ctx, email, "wrong password!", Client{})
			if d := time.Since(start); i == 0 || d < best {
				best = d
			}
		}
		return best
	}
	known, unknown := measure("ada@example.com"), measure("nobody@example.com")
	if unknown < known/3 {
		t.Fatalf("an unknown address answers in %v, a wrong password in %v: the difference tells which addresses exist", unknown, known)
	}
}
