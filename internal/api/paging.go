package api

import (
	"context"
	"net/url"
	"strconv"

	"github.com/danielgtaylor/huma/v2"

	"github.com/catalyst/catalyst/internal/store"
)

// requestURL captures the request's URL and host for building absolute links
// (huma resolves it before the handler runs).
type requestURL struct {
	url    url.URL
	host   string
	scheme string
}

// Resolve implements huma.Resolver.
func (r *requestURL) Resolve(ctx huma.Context) []error {
	r.url = ctx.URL()
	r.host = ctx.Host()
	r.scheme = "http"
	if ctx.TLS() != nil {
		r.scheme = "https"
	}
	return nil
}

// nextLink returns a GitHub-style `Link: <...>; rel="next"` value for the
// same request with the given query parameters replaced; "" when there is
// no next page.
func (r *requestURL) nextLink(set map[string]string) string {
	if len(set) == 0 {
		return ""
	}
	q := r.url.Query()
	for k, v := range set {
		q.Set(k, v)
	}
	u := url.URL{Scheme: r.scheme, Host: r.host, Path: r.url.Path, RawQuery: q.Encode()}
	return "<" + u.String() + `>; rel="next"`
}

// PageParams are the pagination parameters of every list.
type PageParams struct {
	requestURL
	Limit  int    `query:"limit" minimum:"1" maximum:"500" doc:"Page size (default 50, at most 500)."`
	Cursor string `query:"cursor" maxLength:"512" doc:"Opaque cursor from the previous page's Link header."`
}

// next returns the Link header value announcing the page after cursor.
func (p *PageParams) next(cursor string, limit int) string {
	if cursor == "" {
		return ""
	}
	return p.nextLink(map[string]string{"cursor": cursor, "limit": strconv.Itoa(limit)})
}

// listOutput is a bare JSON array (as the original returned) with the next
// page announced in the Link header.
type listOutput[T any] struct {
	Link string `header:"Link" doc:"RFC 8288 link to the next page (rel=\"next\"), absent on the last page."`
	Body []T
}

// newList returns a list output whose body is never JSON null.
func newList[T any](items []T, link string) *listOutput[T] {
	if items == nil {
		items = []T{}
	}
	return &listOutput[T]{Link: link, Body: items}
}

// listPage runs one paginated store query for a list endpoint.
func listPage[T any](ctx context.Context, s *server, in *PageParams, what string,
	fetch func(context.Context, store.Page) ([]T, string, error),
) (*listOutput[T], error) {
	page := store.Page{Limit: in.Limit, Cursor: in.Cursor}.Normalized()
	items, next, err := fetch(ctx, page)
	if err != nil {
		return nil, s.apiError(ctx, what, err)
	}
	return newList(items, in.next(next, page.Limit)), nil
}
