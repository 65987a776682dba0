package storeutil

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/catalyst/catalyst/internal/store"
)

// The cap is inclusive: limit bytes pass, one more fails, and the source is
// not read further than that one byte.
func TestSnapshotSourceLimit(t *testing.T) {
	for _, tc := range []struct {
		n    int
		fail bool
	}{{0, false}, {99, false}, {100, false}, {101, true}, {5000, true}} {
		data := bytes.NewReader(make([]byte, tc.n))
		src := NewSnapshotSource(data, 100)
		_, err := io.Copy(io.Discard, src)
		var info store.SnapshotInfo
		if err == nil {
			err = src.Finish(&info)
		}
		if got := errors.Is(err, store.ErrSnapshotTooLarge); got != tc.fail {
			t.Errorf("%d bytes: err %v, want too large: %v", tc.n, err, tc.fail)
		}
		if !tc.fail && info.Size != int64(tc.n) {
			t.Errorf("%d bytes: size %d", tc.n, info.Size)
		}
		if read := int64(tc.n) - int64(data.Len()); read > 101 {
			t.Errorf("%d bytes: read %d of them, want at most limit+1", tc.n, read)
		}
	}
}
