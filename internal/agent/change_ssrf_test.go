package agent

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/catalyst/catalyst/internal/connector/netpolicy"
	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/store"
)

// projectStore answers GetProject with one project; nothing else is used.
type projectStore struct {
	store.Store
	p domain.Project
}

func (s projectStore) GetProject(context.Context, string) (domain.Project, error) { return s.p, nil }

// A project editor aims a change task's clone at the server's own network
// (cloud metadata, loopback, a private range): the clone is refused before
// any credential is looked up, unless private networks are allowed.
func TestCloneRefusesPrivateRepositoryHosts(t *testing.T) {
	for _, repo := range []string{
		"http://169.254.169.254/latest/meta-data.git",
		"http://127.0.0.1:9/internal.git",
		"http://localhost/internal.git",
		"git://10.0.0.5/internal.git",
		"git@192.168.1.10:team/app.git",
	} {
		lookedUp := false
		c := &Cloner{Deps{
			Store:        projectStore{p: domain.Project{ID: "p", RepoURL: repo, RepoCredential: "CATALYST_REPO_TOKEN_A"}},
			WorkspaceDir: func(string) string { return t.TempDir() },
			Getenv:       func(string) string { lookedUp = true; return "tok" },
			RepoPolicy:   netpolicy.New(netpolicy.Options{}),
		}}
		_, err := c.Run(context.Background(), Input{Task: domain.Task{ID: "t", ProjectID: "p"}, Log: func(string, string) {}})
		if err == nil || !strings.Contains(err.Error(), "CATALYST_EXPLORER_ALLOW_PRIVATE") {
			t.Errorf("%s: clone not refused: %v", repo, err)
		}
		if lookedUp {
			t.Errorf("%s: the credential was looked up for a refused host", repo)
		}
	}

	// Control: with private networks allowed the same URL gets past the
	// policy (and fails later, at the clone itself: nothing listens there).
	c := &Cloner{Deps{
		Store:        projectStore{p: domain.Project{ID: "p", RepoURL: "http://127.0.0.1:9/internal.git"}},
		WorkspaceDir: func(string) string { return t.TempDir() },
		RepoPolicy:   netpolicy.New(netpolicy.Options{AllowPrivate: true}),
	}}
	_, err := c.Run(context.Background(), Input{Task: domain.Task{ID: "t", ProjectID: "p"}, Log: func(string, string) {}})
	if err == nil || strings.Contains(err.Error(), "CATALYST_EXPLORER_ALLOW_PRIVATE") || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("allowed private host: %v", err)
	}
}
