// Package storeutil holds what the store implementations share: the opaque
// list cursor and the bounded retry loop of optimistic updates.
package storeutil

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/catalyst/catalyst/internal/domain"
)

// Cursor is the position after the last item of a page: lists are ordered by
// (created_at desc, id desc), so the next page starts strictly below it.
//
// Legacy holds a created_at that is not a time (a string written by the
// original Python backend, read as-is by the MongoDB store); Null marks an
// item that had no created_at at all. Both are zero for ordinary items.
type Cursor struct {
	CreatedAt time.Time `json:"t,omitzero"`
	Legacy    string    `json:"s,omitempty"`
	Null      bool      `json:"n,omitempty"`
	ID        string    `json:"i"`
}

// Encode returns the cursor as an opaque URL-safe string.
func (c Cursor) Encode() string {
	b, err := json.Marshal(c)
	if err != nil { // cannot happen: fixed, marshalable fields
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeCursor parses a cursor made by Encode. Anything else is an error
// wrapping domain.ErrInvalid, so the API answers 400.
func DecodeCursor(s string) (Cursor, error) {
	var c Cursor
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err == nil && c.ID == "" {
		err = fmt.Errorf("no id")
	}
	if err != nil {
		return Cursor{}, fmt.Errorf("%w: malformed cursor %q: %v", domain.ErrInvalid, s, err)
	}
	return c, nil
}

// MaxAttempts bounds the compare-and-set attempts of one optimistic update.
const MaxAttempts = 100

// ErrRetry is returned by a Retry attempt that lost a compare-and-set race.
var ErrRetry = fmt.Errorf("lost optimistic update race")

// Retry runs attempt until it returns something other than ErrRetry, at most
// MaxAttempts times, sleeping a short jittered backoff between attempts. When
// every attempt lost, it returns an error wrapping domain.ErrConflict.
func Retry(ctx context.Context, what string, attempt func() error) error {
	for i := range MaxAttempts {
		err := attempt()
		if err != ErrRetry {
			return err
		}
		backoff := time.Duration(rand.Int64N(int64(time.Millisecond) << min(i, 5)))
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-time.After(backoff):
		}
	}
	return fmt.Errorf("%s: %w: still losing the race after %d attempts", what, domain.ErrConflict, MaxAttempts)
}

// Update is the optimistic read-modify-write loop shared by the stores'
// UpdateX methods. load returns the current value and its stored version;
// save writes v only if the stored version is still version and reports
// whether it did. A lost race reloads and applies mutate again; an error from
// load, mutate or save ends the loop with that error.
func Update[T any](ctx context.Context, what string,
	load func(ctx context.Context) (T, int64, error),
	mutate func(*T) error,
	save func(ctx context.Context, v *T, version int64) (bool, error),
) (T, error) {
	var out T
	err := Retry(ctx, what, func() error {
		v, version, err := load(ctx)
		if err != nil {
			return err
		}
		if err := mutate(&v); err != nil {
			return err
		}
		ok, err := save(ctx, &v, version)
		if err != nil {
			return err
		}
		if !ok {
			return ErrRetry
		}
		out = v
		return nil
	})
	return out, err
}

// Now returns the current time in UTC without its monotonic reading, rounded
// to precision (a store's finest stored unit), so that what a store returns
// equals what it later reads back.
func Now(precision time.Duration) time.Time {
	return time.Now().UTC().Truncate(precision)
}
