package github

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	gh "github.com/google/go-github/v93/github"
)

// ErrStillComputing: a statistics endpoint kept answering 202 (GitHub is
// computing the numbers) after the retries.
var ErrStillComputing = errors.New("github: statistics are still being computed")

// call runs one go-github request, waits out a rate limit when the client
// allows it, and converts the error.
func call[T any](ctx context.Context, c *Client, f func() (T, *gh.Response, error)) (T, error) {
	for {
		v, resp, err := f()
		if err == nil {
			return v, nil
		}
		e := c.Err(resp, err)
		var api *APIError
		if errors.As(e, &api) && api.RateLimited && c.rateWait > 0 && api.RetryAfter <= c.rateWait {
			wait := max(api.RetryAfter, time.Second)
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return v, fmt.Errorf("github: waiting out a rate limit: %w", ctx.Err())
			case <-t.C:
			}
			continue
		}
		return v, e
	}
}

// Err converts an error of the go-github client into an APIError (or a
// wrapped transport error), with the token redacted.
func (c *Client) Err(resp *gh.Response, err error) error {
	if err == nil {
		return nil
	}
	method, path := "", ""
	var hr *http.Response
	if resp != nil {
		hr = resp.Response
	}
	var (
		er   *gh.ErrorResponse
		rl   *gh.RateLimitError
		ab   *gh.AbuseRateLimitError
		acc  *gh.AcceptedError
		e    *APIError
		wrap = func(e *APIError) error {
			e.Message = c.redact(e.Message)
			for i := range e.Details {
				e.Details[i] = c.redact(e.Details[i])
			}
			return e
		}
	)
	switch {
	case errors.As(err, &rl):
		hr = rl.Response
		e = &APIError{Status: statusOf(hr, http.StatusForbidden), Message: rl.Message, RateLimited: true, ResetAt: rl.Rate.Reset.Time}
		e.RetryAfter = max(time.Until(e.ResetAt), 0)
	case errors.As(err, &ab):
		hr = ab.Response
		e = &APIError{Status: statusOf(hr, http.StatusForbidden), Message: ab.Message, RateLimited: true}
		if ab.RetryAfter != nil {
			e.RetryAfter = *ab.RetryAfter
		} else {
			e.RetryAfter = time.Minute // GitHub: wait at least a minute when no Retry-After is given
		}
	case errors.As(err, &er):
		hr = er.Response
		e = &APIError{Status: statusOf(hr, 0), Message: er.Message, DocURL: er.DocumentationURL}
		for _, d := range er.Errors {
			switch {
			case d.Message != "":
				e.Details = append(e.Details, d.Message)
			case d.Code != "":
				e.Details = append(e.Details, strings.TrimSpace(d.Resource+" "+d.Field+" "+d.Code))
			}
		}
		if e.Status == http.StatusTooManyRequests {
			e.RateLimited = true
			e.RetryAfter = time.Minute
		}
	case errors.As(err, &acc):
		e = &APIError{Status: http.StatusAccepted, Message: "statistics are being computed"}
	}
	if hr != nil && hr.Request != nil {
		method, path = hr.Request.Method, hr.Request.URL.Path
	}
	if e != nil {
		e.Method, e.Path = method, path
		return wrap(e)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("github: %w", err)
	}
	// Transport errors carry the URL, never the Authorization header; the
	// check is for a token a caller put somewhere it should not be.
	if c.token != "" && strings.Contains(err.Error(), c.token) {
		return fmt.Errorf("github: %s", c.redact(err.Error()))
	}
	return fmt.Errorf("github: %w", err)
}

func statusOf(r *http.Response, def int) int {
	if r != nil {
		return r.StatusCode
	}
	return def
}

func (c *Client) redact(s string) string {
	if c.token == "" {
		return s
	}
	return strings.ReplaceAll(s, c.token, "[REDACTED]")
}
