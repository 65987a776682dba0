package git

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/sideband"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	gitproto "github.com/go-git/go-git/v5/plumbing/transport/git"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"

	"github.com/catalyst/catalyst/internal/connector/netpolicy"
)

// cloned is what a clone leaves for measuring.
type cloned struct {
	url     string // redacted
	webURL  string // https://github.com/owner/repo when the remote is on github.com
	branch  string
	head    *object.Commit
	storer  storer.EncodedObjectStorer
	bytes   int64 // transferred
	shallow bool
}

// clone fetches the default branch's last Depth commits into a bare store
// under dir. It speaks the upload-pack protocol itself (rather than
// gogit.Clone) so that the transport is this call's own, built on the
// policy's client, and not go-git's process-wide protocol table.
func (s *Source) clone(ctx context.Context, raw, dir string) (*cloned, error) {
	u, err := s.o.Policy.CheckURL(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("git: %w", err)
	}
	safe := netpolicy.Redact(u.String())
	var tr transport.Transport
	switch u.Scheme {
	case "http", "https":
		tr = githttp.NewClient(s.o.Policy.HTTPClient(0))
	case "git":
		// go-git's git:// client dials the host itself: pin the address the
		// policy checked so a second resolution cannot differ.
		ips, err := s.o.Policy.Resolve(ctx, u.Hostname())
		if err != nil {
			return nil, fmt.Errorf("git: %w", err)
		}
		host := ips[0].String()
		if p := u.Port(); p != "" {
			host = net.JoinHostPort(host, p)
		} else if ips[0].Is6() {
			host = "[" + host + "]"
		}
		u.Host = host
		tr = gitproto.DefaultClient
	case "ssh":
		// The host was resolved and checked above; ssh keeps the name for
		// known_hosts, so a rebinding between the two lookups is possible
		// here (and only here). Host keys are verified against known_hosts.
		tr = gitssh.DefaultClient
	}
	ep, err := transport.NewEndpoint(u.String())
	if err != nil {
		return nil, fmt.Errorf("git: %s: %w", safe, err)
	}
	sess, err := tr.NewUploadPackSession(ep, nil)
	if err != nil {
		return nil, fmt.Errorf("git: %s: %w", safe, err)
	}
	defer sess.Close()
	ar, err := sess.AdvertisedReferencesContext(ctx)
	if err != nil {
		return nil, s.wrap(ctx, safe, err)
	}
	branch, head, err := pickHead(ar)
	if err != nil {
		return nil, fmt.Errorf("git: %s: %w", safe, err)
	}

	repo, err := gogit.PlainInit(filepath.Join(dir, "repo.git"), true)
	if err != nil {
		return nil, fmt.Errorf("git: scratch repository: %w", err)
	}
	req := packp.NewUploadPackRequestFromCapabilities(ar.Capabilities)
	req.Wants = []plumbing.Hash{head}
	if ar.Capabilities.Supports(capability.Shallow) {
		req.Depth = packp.DepthCommits(s.o.Depth)
		if err := req.Capabilities.Set(capability.Shallow); err != nil {
			return nil, err
		}
	}
	if ar.Capabilities.Supports(capability.NoProgress) {
		_ = req.Capabilities.Set(capability.NoProgress)
	}
	resp, err := sess.UploadPack(ctx, req)
	if err != nil {
		return nil, s.wrap(ctx, safe, err)
	}
	defer resp.Close()
	counted := &capped{r: resp, max: s.o.MaxBytes}
	var in io.Reader = counted
	switch {
	case req.Capabilities.Supports(capability.Sideband64k):
		in = sideband.NewDemuxer(sideband.Sideband64k, counted)
	case req.Capabilities.Supports(capability.Sideband):
		in = sideband.NewDemuxer(sideband.Sideband, counted)
	}
	if err := packfile.UpdateObjectStorage(repo.Storer, in); err != nil {
		if counted.over.Load() {
			return nil, fmt.Errorf("%w (%d MB)", ErrTooLarge, s.o.MaxBytes>>20)
		}
		return nil, s.wrap(ctx, safe, err)
	}
	if len(resp.Shallows) > 0 {
		if err := repo.Storer.SetShallow(resp.Shallows); err != nil {
			return nil, err
		}
	}
	commit, err := object.GetCommit(repo.Storer, head)
	if err != nil {
		return nil, fmt.Errorf("git: %s: head commit missing from the pack: %w", safe, err)
	}
	return &cloned{url: safe, webURL: webURL(u), branch: branch, head: commit, storer: repo.Storer,
		bytes: counted.n.Load(), shallow: len(resp.Shallows) > 0}, nil
}

// wrap names the cause of a failed transfer: the deadline, a cancellation,
// or the remote's error (which never carries credentials: the URL has none
// we added, and a user's password was redacted from safe).
func (s *Source) wrap(ctx context.Context, safe string, err error) error {
	if ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("git: %s: clone took longer than %s: %w", safe, s.o.Timeout, ctx.Err())
		}
		return fmt.Errorf("git: %s: %w", safe, ctx.Err())
	}
	if errors.Is(err, transport.ErrAuthenticationRequired) || errors.Is(err, transport.ErrAuthorizationFailed) {
		return fmt.Errorf("git: %s: the repository needs credentials (only public repositories can be cloned): %w", safe, err)
	}
	if errors.Is(err, transport.ErrRepositoryNotFound) {
		return fmt.Errorf("git: %s: repository not found: %w", safe, err)
	}
	return fmt.Errorf("git: %s: %w", safe, err)
}

// pickHead chooses the branch HEAD points at, else main, master, or the
// first branch by name.
func pickHead(ar *packp.AdvRefs) (string, plumbing.Hash, error) {
	refs, err := ar.AllReferences()
	if err != nil {
		return "", plumbing.ZeroHash, err
	}
	if target := ar.Capabilities.Get(capability.SymRef); len(target) > 0 {
		for _, v := range target {
			if from, to, ok := strings.Cut(v, ":"); ok && from == "HEAD" {
				if r, ok := refs[plumbing.ReferenceName(to)]; ok && r.Type() == plumbing.HashReference {
					return plumbing.ReferenceName(to).Short(), r.Hash(), nil
				}
			}
		}
	}
	if ar.Head != nil {
		for name, r := range refs {
			if name.IsBranch() && r.Type() == plumbing.HashReference && r.Hash() == *ar.Head {
				return name.Short(), *ar.Head, nil
			}
		}
		return "HEAD", *ar.Head, nil
	}
	var branches []string
	for name, r := range refs {
		if name.IsBranch() && r.Type() == plumbing.HashReference {
			branches = append(branches, string(name))
		}
	}
	if len(branches) == 0 {
		return "", plumbing.ZeroHash, ErrEmpty
	}
	sort.Strings(branches)
	pick := branches[0]
	for _, b := range []string{"refs/heads/main", "refs/heads/master"} {
		if _, ok := refs[plumbing.ReferenceName(b)]; ok {
			pick = b
			break
		}
	}
	name := plumbing.ReferenceName(pick)
	return name.Short(), refs[name].Hash(), nil
}

// capped counts bytes read and fails once more than max have arrived, so a
// huge repository is stopped while it transfers, not after.
type capped struct {
	r    io.Reader
	max  int64
	n    atomic.Int64
	over atomic.Bool
}

func (c *capped) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.n.Add(int64(n)) > c.max {
		c.over.Store(true)
		return n, ErrTooLarge
	}
	return n, err
}

// webURL is the browsable page of a github.com repository, for links to a
// file and line; "" for other hosts, whose web layout is unknown.
func webURL(u *url.URL) string {
	if !strings.EqualFold(u.Hostname(), "github.com") {
		return ""
	}
	p := strings.TrimSuffix(strings.Trim(u.Path, "/"), ".git")
	if strings.Count(p, "/") != 1 {
		return ""
	}
	return "https://github.com/" + p
}
