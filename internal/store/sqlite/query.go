package sqlite

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/catalyst/catalyst/internal/store"
	"github.com/catalyst/catalyst/internal/store/internal/storeutil"
)

// list returns one page of table, newest first (created_at desc, id desc),
// filtered by the AND of conds, and the cursor of the next page.
func list[T any](ctx context.Context, s *Store, table, cols string, conds []string, args []any,
	page store.Page, scan func(rowScanner) (T, error), key func(T) (time.Time, string),
) ([]T, string, error) {
	return listCols(ctx, s, table, cols, nil, conds, args, page, scan, key)
}

// listCols is list with placeholders in cols too: colArgs are their
// arguments, args those of conds.
func listCols[T any](ctx context.Context, s *Store, table, cols string, colArgs []any, conds []string, args []any,
	page store.Page, scan func(rowScanner) (T, error), key func(T) (time.Time, string),
) ([]T, string, error) {
	page = page.Normalized()
	args = append(append([]any{}, colArgs...), args...)
	if page.Cursor != "" {
		c, err := storeutil.DecodeCursor(page.Cursor)
		if err != nil {
			return nil, "", err
		}
		conds = append(conds, "(created_at, id) < (?, ?)") // a row value: SQLite seeks the index to it
		at := fmtTime(c.CreatedAt)
		args = append(args, at, c.ID)
	}
	q := `SELECT ` + cols + ` FROM ` + table
	if len(conds) > 0 {
		q += ` WHERE ` + strings.Join(conds, " AND ")
	}
	q += ` ORDER BY created_at DESC, id DESC LIMIT ?`
	args = append(args, page.Limit+1) // one more tells whether a next page exists

	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, "", mapErr(err, "list "+table, "")
	}
	items, err := collect(rows, scan)
	if err != nil {
		return nil, "", mapErr(err, "list "+table, "")
	}
	if len(items) <= page.Limit {
		return items, "", nil
	}
	items = items[:page.Limit]
	at, id := key(items[len(items)-1])
	return items, storeutil.Cursor{CreatedAt: at, ID: id}.Encode(), nil
}

// collect scans every row and closes rows.
func collect[T any](rows *sql.Rows, scan func(rowScanner) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// dropVersion adapts a scanner that also returns the row version.
func dropVersion[T any](scan func(rowScanner) (T, int64, error)) func(rowScanner) (T, error) {
	return func(r rowScanner) (T, error) {
		v, _, err := scan(r)
		return v, err
	}
}

// firstErr runs steps in order and returns the first error.
func firstErr(steps ...func() error) error {
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

func newID() string { return uuid.NewString() }

// visibleProjects is a subquery of the ids of the projects a user owns or
// is a member of; its two arguments are the user id.
const visibleProjects = `(SELECT id FROM projects WHERE owner_id = ? UNION SELECT project_id FROM project_members WHERE user_id = ?)`

// inScope returns the condition that column (a project id) is one scope
// sees, and its arguments. The zero scope matches nothing.
func inScope(scope store.Scope, column string) (string, []any) {
	switch {
	case scope.IsAll():
		return "1 = 1", nil
	case scope.None():
		return "1 = 0", nil
	}
	u := scope.UserID()
	return column + " IN " + visibleProjects, []any{u, u}
}
