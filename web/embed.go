// Package web holds Catalyst's dashboard. Its sources are in src/ (Vite +
// Preact + TypeScript); the built assets in dist/ are committed so that
// `go build` alone yields a binary that serves the UI. check-dist.sh fails when
// dist/ is out of date with the sources.
package web

import (
	"embed"
	"io/fs"
)

//go:embed all:dist
var dist embed.FS

// Assets returns the built dashboard: index.html at the root, hashed files
// under assets/. Serve it at "/" and fall back to index.html for unknown
// non-API paths (the dashboard routes by URL hash, so the fallback only
// matters for bookmarked paths).
func Assets() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		// fs.Sub fails only on an invalid path; "dist" is valid.
		panic(err)
	}
	return sub
}
