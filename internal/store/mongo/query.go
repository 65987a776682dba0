package mongo

import (
	"context"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/catalyst/catalyst/internal/store"
	"github.com/catalyst/catalyst/internal/store/internal/storeutil"
)

func byID(id string) bson.D { return bson.D{{Key: "id", Value: id}} }

// findOne decodes the one document matching filter.
func findOne[D any](ctx context.Context, coll *mongo.Collection, filter bson.D, what string) (D, error) {
	var d D
	if err := coll.FindOne(ctx, filter).Decode(&d); err != nil {
		return d, mapErr(err, what)
	}
	return d, nil
}

// exists reports, as a wrapped domain.ErrNotFound, that no document has id.
func exists(ctx context.Context, coll *mongo.Collection, id, what string) error {
	err := coll.FindOne(ctx, byID(id), options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
	if err != nil {
		return mapErr(err, what)
	}
	return nil
}

// findAll decodes every document matching filter, converted by conv.
func findAll[D, T any](ctx context.Context, coll *mongo.Collection, filter bson.D, opts *options.FindOptionsBuilder,
	conv func(*D) (T, error), what string,
) ([]T, error) {
	cur, err := coll.Find(ctx, filter, opts)
	if err != nil {
		return nil, mapErr(err, what)
	}
	defer cur.Close(ctx)
	var out []T
	for cur.Next(ctx) {
		var d D
		if err := cur.Decode(&d); err != nil {
			return nil, mapErr(err, what)
		}
		v, err := conv(&d)
		if err != nil {
			return nil, mapErr(err, what)
		}
		out = append(out, v)
	}
	if err := cur.Err(); err != nil {
		return nil, mapErr(err, what)
	}
	return out, nil
}

// list returns one page of coll, newest first (created_at desc, id desc),
// and the cursor of the next page.
func list[D, T any](ctx context.Context, coll *mongo.Collection, filter bson.D, page store.Page,
	conv func(*D) (T, error), key func(*D) (flexTime, string),
) ([]T, string, error) {
	page = page.Normalized()
	if page.Cursor != "" {
		c, err := storeutil.DecodeCursor(page.Cursor)
		if err != nil {
			return nil, "", err
		}
		filter = bson.D{{Key: "$and", Value: bson.A{filter, after(c)}}}
	}
	what := "list " + coll.Name()
	opts := options.Find().SetSort(newest).SetLimit(int64(page.Limit) + 1)
	type position struct {
		at flexTime
		id string
	}
	var keys []position
	items, err := findAll(ctx, coll, filter, opts, func(d *D) (T, error) {
		at, id := key(d)
		keys = append(keys, position{at, id})
		return conv(d)
	}, what)
	if err != nil || len(items) <= page.Limit {
		return items, "", err
	}
	// The extra item only told that a next page exists.
	last := keys[page.Limit-1]
	return items[:page.Limit], cursorOf(last.at, last.id), nil
}

// after selects what sorts after c in (created_at desc, id desc). In BSON
// order dates sort above strings, which sort above null and missing, so
// below a date come older dates, then the original's string timestamps, then
// documents without one.
func after(c storeutil.Cursor) bson.D {
	below := func(v any) bson.A {
		return bson.A{
			bson.D{{Key: "created_at", Value: bson.D{{Key: "$lt", Value: v}}}},
			bson.D{{Key: "created_at", Value: v}, {Key: "id", Value: bson.D{{Key: "$lt", Value: c.ID}}}},
		}
	}
	missing := bson.D{{Key: "created_at", Value: nil}}
	switch {
	case c.Null:
		return bson.D{{Key: "created_at", Value: nil}, {Key: "id", Value: bson.D{{Key: "$lt", Value: c.ID}}}}
	case c.Legacy != "":
		return bson.D{{Key: "$or", Value: append(below(c.Legacy), missing)}}
	default:
		return bson.D{{Key: "$or", Value: append(below(bson.NewDateTimeFromTime(c.CreatedAt)),
			bson.D{{Key: "created_at", Value: bson.D{{Key: "$type", Value: "string"}}}}, missing)}}
	}
}

// cursorOf is the cursor that continues after an item with this key.
func cursorOf(t flexTime, id string) string {
	return storeutil.Cursor{CreatedAt: t.t, Legacy: t.legacy, Null: !t.present, ID: id}.Encode()
}
