// Package git is the Explorer's Git connector: a shallow, size- and
// time-capped clone of any http(s), ssh or git URL into a scratch directory
// that is removed afterwards, measured without ever running anything from it.
//
// Read-only by construction: the clone fetches objects into a bare object
// store and reads blobs from the commit's tree. Nothing is checked out, so no
// hook runs, no symlink is followed, no submodule is fetched, no filter or
// attribute driver is invoked. Every connection goes through the netpolicy.
package git

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/catalyst/catalyst/internal/connector"
	"github.com/catalyst/catalyst/internal/connector/netpolicy"
)

// Defaults of Options.
const (
	DefaultDepth       = 200
	DefaultMaxBytes    = 200 << 20
	DefaultTimeout     = 3 * time.Minute
	DefaultMaxFiles    = 20000
	DefaultMaxFileSize = 1 << 20
)

var (
	// ErrTooLarge: the transfer passed Options.MaxBytes and was stopped.
	ErrTooLarge = errors.New("git: repository larger than the clone limit")
	// ErrEmpty: the remote has no commits.
	ErrEmpty = errors.New("git: repository is empty")
)

// Options configures the source. Policy is required.
type Options struct {
	Policy      *netpolicy.Policy
	Depth       int           // commits of history fetched (default 200)
	MaxBytes    int64         // bytes transferred before the clone is stopped (default 200 MB)
	Timeout     time.Duration // whole clone and scan (default 3 min)
	MaxFiles    int           // files scanned for content (default 20000)
	MaxFileSize int64         // larger files are not read (default 1 MB)
	ScratchDir  string        // parent of the scratch directory (default os.TempDir())
	Now         func() time.Time
}

// Source is the git connector.
type Source struct{ o Options }

// New returns the source.
func New(o Options) *Source {
	if o.Policy == nil {
		o.Policy = netpolicy.New(netpolicy.Options{})
	}
	if o.Depth <= 0 {
		o.Depth = DefaultDepth
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxFiles <= 0 {
		o.MaxFiles = DefaultMaxFiles
	}
	if o.MaxFileSize <= 0 {
		o.MaxFileSize = DefaultMaxFileSize
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Source{o: o}
}

// Name implements connector.Source.
func (s *Source) Name() string { return "git" }

// Gather clones t.RepoURL and measures it.
func (s *Source) Gather(ctx context.Context, t connector.Target) ([]connector.Fact, error) {
	if t.RepoURL == "" {
		return nil, errors.New("git: no repository URL")
	}
	ctx, cancel := context.WithTimeout(ctx, s.o.Timeout)
	defer cancel()
	dir, err := os.MkdirTemp(s.o.ScratchDir, "catalyst-explore-*")
	if err != nil {
		return nil, fmt.Errorf("git: scratch directory: %w", err)
	}
	defer os.RemoveAll(dir)

	c, err := s.clone(ctx, t.RepoURL, dir)
	if err != nil {
		return nil, err
	}
	return s.measure(ctx, c)
}
