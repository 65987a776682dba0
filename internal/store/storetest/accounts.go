package storetest

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/store"
)

// accountCases are the conformance cases of users, sessions, API keys,
// invites and the audit log; Run includes them.
var accountCases = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"Users", testUsers},
	{"FirstUserConcurrent", testFirstUserConcurrent},
	{"PaginateUsers", testPaginateUsers},
	{"Sessions", testSessions},
	{"APIKeys", testAPIKeys},
	{"Invites", testInvites},
	{"InviteUsedOnce", testInviteUsedOnce},
	{"AuditAppendOnly", testAuditAppendOnly},
	{"AuditFilter", testAuditFilter},
	{"PaginateAudit", testPaginateAudit},
}

func newUser(email string, created time.Time) domain.User {
	return domain.User{ID: uuid.NewString(), Email: email, Name: "Ada", Role: domain.RoleUser,
		PasswordHash: "bcrypt-sha256$" + uuid.NewString(), CreatedAt: created}
}

func mustUser(t *testing.T, s store.Store, email string) domain.User {
	t.Helper()
	u := newUser(email, T0)
	must(t, "CreateUser", s.CreateUser(t.Context(), u))
	return u
}

func testUsers(t *testing.T, s store.Store) {
	ctx := t.Context()
	n, err := s.CountUsers(ctx)
	must(t, "CountUsers", err)
	if n != 0 {
		t.Fatalf("a new store counts %d users", n)
	}
	first := newUser("ada@example.com", T0)
	first.Role = domain.RoleAdmin
	must(t, "CreateFirstUser", s.CreateFirstUser(ctx, first))
	assertIs(t, "CreateFirstUser with a user present", s.CreateFirstUser(ctx, newUser("bob@example.com", T0)), domain.ErrConflict)

	got, err := s.GetUser(ctx, first.ID)
	must(t, "GetUser", err)
	assertEqual(t, "user", got, first)
	got, err = s.GetUserByEmail(ctx, "ada@example.com")
	must(t, "GetUserByEmail", err)
	assertEqual(t, "user by e-mail", got, first)
	_, err = s.GetUserByEmail(ctx, "ADA@example.com")
	assertIs(t, "GetUserByEmail of another address", err, domain.ErrNotFound)
	_, err = s.GetUser(ctx, uuid.NewString())
	assertIs(t, "GetUser unknown", err, domain.ErrNotFound)

	dup := newUser("ada@example.com", T0)
	assertIs(t, "CreateUser with a taken e-mail", s.CreateUser(ctx, dup), domain.ErrConflict)
	mustUser(t, s, "bob@example.com")
	n, err = s.CountUsers(ctx)
	must(t, "CountUsers", err)
	if n != 2 {
		t.Errorf("CountUsers = %d, want 2", n)
	}
}

func testFirstUserConcurrent(t *testing.T, s store.Store) {
	var wg sync.WaitGroup
	var won atomic.Int32
	for i := range 6 {
		wg.Go(func() {
			u := newUser(label("u%d@example.com", i), T0)
			if err := s.CreateFirstUser(t.Context(), u); err == nil {
				won.Add(1)
			} else {
				assertIs(t, "losing CreateFirstUser", err, domain.ErrConflict)
			}
		})
	}
	wg.Wait()
	n, err := s.CountUsers(t.Context())
	must(t, "CountUsers", err)
	if won.Load() != 1 || n != 1 {
		t.Errorf("%d first registrations won, %d users stored; want exactly one", won.Load(), n)
	}
}

func testPaginateUsers(t *testing.T, s store.Store) {
	testPaginate(t, func(created time.Time) domain.User {
		u := newUser(uuid.NewString()+"@example.com", created)
		must(t, "CreateUser", s.CreateUser(t.Context(), u))
		return u
	}, func(p store.Page) ([]domain.User, string, error) { return s.ListUsers(t.Context(), p) },
		func(u domain.User) (time.Time, string) { return u.CreatedAt, u.ID })
}

func testSessions(t *testing.T, s store.Store) {
	ctx := t.Context()
	ada, bob := mustUser(t, s, "ada@example.com"), mustUser(t, s, "bob@example.com")
	mk := func(u domain.User, i int) domain.Session {
		x := domain.Session{ID: uuid.NewString(), UserID: u.ID, TokenHash: uuid.NewString(), CreatedAt: at(i),
			LastSeenAt: at(i), UserAgent: "curl/8", RemoteAddr: "127.0.0.1"}
		must(t, "CreateSession", s.CreateSession(ctx, x))
		return x
	}
	a1, a2, b1 := mk(ada, 1), mk(ada, 2), mk(bob, 3)
	assertIs(t, "CreateSession for an unknown user",
		s.CreateSession(ctx, domain.Session{ID: uuid.NewString(), UserID: uuid.NewString(), TokenHash: "x", CreatedAt: T0, LastSeenAt: T0}),
		domain.ErrNotFound)

	got, err := s.GetSessionByHash(ctx, a1.TokenHash)
	must(t, "GetSessionByHash", err)
	assertEqual(t, "session", got, a1)
	_, err = s.GetSessionByHash(ctx, "nope")
	assertIs(t, "GetSessionByHash unknown", err, domain.ErrNotFound)

	must(t, "TouchSession", s.TouchSession(ctx, a1.ID, at(10)))
	must(t, "TouchSession back in time", s.TouchSession(ctx, a1.ID, at(5)))
	got, _ = s.GetSessionByHash(ctx, a1.TokenHash)
	if !got.LastSeenAt.Equal(at(10)) {
		t.Errorf("last_seen_at = %v, want %v (touches never move it back)", got.LastSeenAt, at(10))
	}

	list, err := s.ListSessions(ctx, ada.ID)
	must(t, "ListSessions", err)
	if len(list) != 2 || list[0].ID != a2.ID || list[1].ID != a1.ID {
		t.Errorf("ListSessions(ada) = %v, want a2, a1", list)
	}
	assertIs(t, "DeleteSession of another user's session", s.DeleteSession(ctx, ada.ID, b1.ID), domain.ErrNotFound)
	must(t, "DeleteSession", s.DeleteSession(ctx, ada.ID, a2.ID))
	_, err = s.GetSessionByHash(ctx, a2.TokenHash)
	assertIs(t, "GetSessionByHash after delete", err, domain.ErrNotFound)

	n, err := s.DeleteIdleSessions(ctx, at(4))
	must(t, "DeleteIdleSessions", err)
	if n != 1 { // b1 (seen at 3); a1 was seen at 10
		t.Errorf("DeleteIdleSessions removed %d, want 1", n)
	}
	if _, err := s.GetSessionByHash(ctx, a1.TokenHash); err != nil {
		t.Errorf("a recently seen session was removed: %v", err)
	}
}

func testAPIKeys(t *testing.T, s store.Store) {
	ctx := t.Context()
	ada, bob := mustUser(t, s, "ada@example.com"), mustUser(t, s, "bob@example.com")
	exp := at(1000)
	k1 := domain.APIKey{ID: uuid.NewString(), UserID: ada.ID, Name: "ci", Prefix: "ck_abcd", KeyHash: uuid.NewString(), CreatedAt: at(1)}
	k2 := domain.APIKey{ID: uuid.NewString(), UserID: ada.ID, Name: "deploy", Prefix: "ck_efgh", KeyHash: uuid.NewString(), CreatedAt: at(2), ExpiresAt: &exp}
	must(t, "CreateAPIKey", s.CreateAPIKey(ctx, k1))
	must(t, "CreateAPIKey", s.CreateAPIKey(ctx, k2))
	dup := k1
	dup.ID = uuid.NewString()
	assertIs(t, "CreateAPIKey with a taken hash", s.CreateAPIKey(ctx, dup), domain.ErrConflict)

	got, err := s.GetAPIKeyByHash(ctx, k2.KeyHash)
	must(t, "GetAPIKeyByHash", err)
	assertEqual(t, "API key", got, k2)
	must(t, "TouchAPIKey", s.TouchAPIKey(ctx, k1.ID, at(7)))
	got, _ = s.GetAPIKeyByHash(ctx, k1.KeyHash)
	if got.LastUsedAt == nil || !got.LastUsedAt.Equal(at(7)) {
		t.Errorf("last_used_at = %v, want %v", got.LastUsedAt, at(7))
	}
	list, err := s.ListAPIKeys(ctx, ada.ID)
	must(t, "ListAPIKeys", err)
	if len(list) != 2 || list[0].ID != k2.ID {
		t.Errorf("ListAPIKeys = %v, want k2, k1", list)
	}
	if l, _ := s.ListAPIKeys(ctx, bob.ID); len(l) != 0 {
		t.Errorf("bob sees %d keys", len(l))
	}
	assertIs(t, "DeleteAPIKey by another user", s.DeleteAPIKey(ctx, bob.ID, k1.ID), domain.ErrNotFound)
	must(t, "DeleteAPIKey", s.DeleteAPIKey(ctx, ada.ID, k1.ID))
	_, err = s.GetAPIKeyByHash(ctx, k1.KeyHash)
	assertIs(t, "GetAPIKeyByHash after revocation", err, domain.ErrNotFound)
}

func testInvites(t *testing.T, s store.Store) {
	ctx := t.Context()
	inv := domain.Invite{ID: uuid.NewString(), TokenHash: uuid.NewString(), Email: "new@example.com", CreatedBy: "admin",
		CreatedAt: at(1), ExpiresAt: at(100)}
	must(t, "CreateInvite", s.CreateInvite(ctx, inv))
	got, err := s.GetInviteByHash(ctx, inv.TokenHash)
	must(t, "GetInviteByHash", err)
	assertEqual(t, "invite", got, inv)
	assertIs(t, "UseInvite after expiry", s.UseInvite(ctx, inv.ID, "u1", at(100)), domain.ErrConflict)
	must(t, "UseInvite", s.UseInvite(ctx, inv.ID, "u1", at(50)))
	assertIs(t, "UseInvite twice", s.UseInvite(ctx, inv.ID, "u2", at(51)), domain.ErrConflict)
	got, _ = s.GetInviteByHash(ctx, inv.TokenHash)
	if got.UsedAt == nil || !got.UsedAt.Equal(at(50)) || got.UsedBy != "u1" {
		t.Errorf("used invite = %+v, want used at %v by u1", got, at(50))
	}
	assertIs(t, "UseInvite unknown", s.UseInvite(ctx, uuid.NewString(), "u1", at(1)), domain.ErrConflict)
}

func testInviteUsedOnce(t *testing.T, s store.Store) {
	inv := domain.Invite{ID: uuid.NewString(), TokenHash: uuid.NewString(), CreatedBy: "admin", CreatedAt: at(1), ExpiresAt: at(100)}
	must(t, "CreateInvite", s.CreateInvite(t.Context(), inv))
	var wg sync.WaitGroup
	var won atomic.Int32
	for i := range 6 {
		wg.Go(func() {
			if s.UseInvite(t.Context(), inv.ID, label("u%d", i), at(2)) == nil {
				won.Add(1)
			}
		})
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Errorf("an invite was used %d times, want once", won.Load())
	}
}

func newAudit(i int, actor, action string, result domain.AuditResult) domain.AuditEntry {
	return domain.AuditEntry{ID: uuid.NewString(), Time: at(i), ActorID: actor, ActorKind: "user", ActorEmail: actor + "@example.com",
		Action: action, ResourceType: "project", ResourceID: "p-" + actor, RemoteAddr: "127.0.0.1", UserAgent: "curl/8",
		Result: result, Status: 200, Detail: "d"}
}

func testAuditAppendOnly(t *testing.T, s store.Store) {
	ctx := t.Context()
	e := newAudit(1, "ada", "auth.login", domain.AuditOK)
	must(t, "AppendAudit", s.AppendAudit(ctx, e))
	forged := e
	forged.Result, forged.ActorID = domain.AuditDenied, "mallory"
	assertIs(t, "AppendAudit over an existing id", s.AppendAudit(ctx, forged), domain.ErrConflict)
	got, _, err := s.ListAudit(ctx, store.AuditFilter{}, store.Page{})
	must(t, "ListAudit", err)
	if len(got) != 1 {
		t.Fatalf("ListAudit returned %d entries, want 1", len(got))
	}
	assertEqual(t, "audit entry after a forged append", got[0], e)
}

func testAuditFilter(t *testing.T, s store.Store) {
	ctx := t.Context()
	entries := []domain.AuditEntry{
		newAudit(1, "ada", "auth.login", domain.AuditOK),
		newAudit(2, "ada", "auth.login", domain.AuditDenied),
		newAudit(3, "bob", "project.create", domain.AuditOK),
		newAudit(4, "bob", "auth.logout", domain.AuditOK),
	}
	for _, e := range entries {
		must(t, "AppendAudit", s.AppendAudit(ctx, e))
	}
	ids := func(f store.AuditFilter) []string {
		got, _, err := s.ListAudit(ctx, f, store.Page{})
		must(t, "ListAudit", err)
		var out []string
		for _, e := range got {
			out = append(out, e.ID)
		}
		return out
	}
	id := func(i ...int) []string {
		var out []string
		for _, j := range i {
			out = append(out, entries[j].ID)
		}
		return out
	}
	cases := []struct {
		name string
		f    store.AuditFilter
		want []string
	}{
		{"all", store.AuditFilter{}, id(3, 2, 1, 0)},
		{"actor", store.AuditFilter{ActorID: "ada"}, id(1, 0)},
		{"action", store.AuditFilter{Action: "auth.login"}, id(1, 0)},
		{"result", store.AuditFilter{Result: domain.AuditDenied}, id(1)},
		{"resource", store.AuditFilter{ResourceType: "project", ResourceID: "p-bob"}, id(3, 2)},
		{"since until", store.AuditFilter{Since: at(2), Until: at(4)}, id(2, 1)},
		{"combined", store.AuditFilter{ActorID: "bob", Action: "auth.logout", Since: at(1)}, id(3)},
		{"none", store.AuditFilter{ActorID: "nobody"}, nil},
	}
	for _, c := range cases {
		assertEqual(t, "ListAudit "+c.name, ids(c.f), c.want)
	}
}

func testPaginateAudit(t *testing.T, s store.Store) {
	testPaginate(t, func(created time.Time) domain.AuditEntry {
		e := newAudit(0, "ada", "x", domain.AuditOK)
		e.Time = created
		must(t, "AppendAudit", s.AppendAudit(t.Context(), e))
		return e
	}, func(p store.Page) ([]domain.AuditEntry, string, error) {
		return s.ListAudit(t.Context(), store.AuditFilter{Action: "x"}, p)
	}, func(e domain.AuditEntry) (time.Time, string) { return e.Time, e.ID })
}
