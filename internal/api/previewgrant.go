package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/catalyst/catalyst/internal/tasks"
)

// Previews are served on their own origin, where the dashboard's session
// cookie never goes (and where generated code runs, in an opaque sandboxed
// origin, so no cookie of that origin would reach its subresource requests
// either). A preview is therefore opened through a grant in its path:
// /apps/{task_id}/{grant}/... The API mints it for an actor who may see the
// task (in the deployment's url, and when /apps/... on the API's origin
// redirects), and the preview origin checks its MAC and expiry, then asks
// the store again, in the actor's scope, whether the task is still
// visible: a member removed from the project loses the preview at once.
//
// A grant is a bearer capability for one task's preview, read-only, for
// previewGrantTTL at most: whoever is given the link sees that app. The
// app itself can read its own grant from its address, which gives it
// nothing it does not have: it can already show (or send) what it is.

const previewGrantVersion = "g1"

// previewGrantKey derives the grant key from the server token, as the
// session cookie's: all API nodes share it, and a new token voids grants.
func previewGrantKey(token string) []byte {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("catalyst preview grant key v1"))
	return m.Sum(nil)
}

// previewGrantTTL is how long a minted preview link works.
func (s *server) previewGrantTTL() time.Duration {
	if s.cfg.SessionTimeout > 0 {
		return s.cfg.SessionTimeout
	}
	return time.Hour
}

func (s *server) grantMAC(payload string) string {
	m := hmac.New(sha256.New, s.grantKey)
	m.Write([]byte(previewGrantVersion + "\x00" + payload))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// mintPreviewGrant returns a grant for a to open taskID's preview.
func (s *server) mintPreviewGrant(a tasks.Actor, taskID string) string {
	admin := "0"
	if a.Admin {
		admin = "1"
	}
	exp := strconv.FormatInt(time.Now().Add(s.previewGrantTTL()).Unix(), 10)
	payload := base64.RawURLEncoding.EncodeToString([]byte(strings.Join([]string{taskID, string(a.Kind), a.ID, admin, exp}, "\n")))
	return previewGrantVersion + "." + payload + "." + s.grantMAC(payload)
}

var (
	errGrantInvalid = errors.New("this preview link is not valid for this task; open the preview again from the dashboard")
	errGrantExpired = errors.New("this preview link has expired; open the preview again from the dashboard")
)

// checkPreviewGrant returns the actor a grant for taskID was minted for.
func (s *server) checkPreviewGrant(grant, taskID string) (tasks.Actor, error) {
	parts := strings.Split(grant, ".")
	if len(parts) != 3 || parts[0] != previewGrantVersion || !hmac.Equal([]byte(parts[2]), []byte(s.grantMAC(parts[1]))) {
		return tasks.Actor{}, errGrantInvalid
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return tasks.Actor{}, errGrantInvalid
	}
	f := strings.Split(string(raw), "\n")
	if len(f) != 5 || f[0] != taskID {
		return tasks.Actor{}, errGrantInvalid
	}
	exp, err := strconv.ParseInt(f[4], 10, 64)
	if err != nil {
		return tasks.Actor{}, errGrantInvalid
	}
	if !time.Now().Before(time.Unix(exp, 0)) {
		return tasks.Actor{}, errGrantExpired
	}
	return tasks.Actor{Kind: tasks.ActorKind(f[1]), ID: f[2], Name: f[2], Admin: f[3] == "1"}, nil
}

// previewURL is the preview's address for a, with a fresh grant.
func (s *server) previewURL(a tasks.Actor, taskID string) string {
	return strings.TrimRight(s.cfg.PreviewURL, "/") + "/apps/" + taskID + "/" + s.mintPreviewGrant(a, taskID) + "/"
}
