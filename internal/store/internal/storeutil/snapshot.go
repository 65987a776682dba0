package storeutil

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"regexp"
	"sync"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/store"
)

// CheckSnapshotKey validates the key of a snapshot about to be put, and
// refuses a declared size over the cap before anything is uploaded.
func CheckSnapshotKey(info store.SnapshotInfo, data io.Reader) error {
	switch {
	case info.TaskID == "":
		return fmt.Errorf("%w: snapshot without a task id", domain.ErrInvalid)
	case info.Node == "":
		return fmt.Errorf("%w: snapshot without a node", domain.ErrInvalid)
	case info.Iteration < 0:
		return fmt.Errorf("%w: snapshot iteration %d is negative", domain.ErrInvalid, info.Iteration)
	case info.SHA256 != "" && !sha256Hex.MatchString(info.SHA256):
		return fmt.Errorf("%w: snapshot sha256 %q is not 64 lowercase hex digits", domain.ErrInvalid, info.SHA256)
	case info.Size < 0:
		return fmt.Errorf("%w: snapshot size %d is negative", domain.ErrInvalid, info.Size)
	case info.Size > store.MaxSnapshotSize:
		return fmt.Errorf("%w: the caller declared %d bytes, the cap is %d (%d MiB)", store.ErrSnapshotTooLarge,
			info.Size, int64(store.MaxSnapshotSize), store.MaxSnapshotSize>>20)
	case data == nil:
		return fmt.Errorf("%w: snapshot without data", domain.ErrInvalid)
	}
	return nil
}

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// SnapshotSource reads the data of a put: it counts and hashes what passes
// and refuses to read beyond its limit (store.MaxSnapshotSize), so a
// hostile or runaway stream is cut off one byte over the cap, not read to
// its end.
type SnapshotSource struct {
	r     io.Reader
	limit int64
	h     hash.Hash
	n     int64
	over  bool
}

// NewSnapshotSource wraps the data of a put.
func NewSnapshotSource(data io.Reader, limit int64) *SnapshotSource {
	return &SnapshotSource{r: io.LimitReader(data, limit+1), limit: limit, h: sha256.New()}
}

func (s *SnapshotSource) Read(p []byte) (int, error) {
	if s.over {
		return 0, s.tooLarge()
	}
	n, err := s.r.Read(p)
	if s.n+int64(n) > s.limit {
		s.over = true
		return 0, s.tooLarge()
	}
	s.n += int64(n)
	s.h.Write(p[:n])
	return n, err
}

func (s *SnapshotSource) tooLarge() error {
	return fmt.Errorf("%w: more than %d bytes (%d MiB)", store.ErrSnapshotTooLarge, s.limit, s.limit>>20)
}

// Finish checks what was read against the caller's expectations in want and
// fills in Size and SHA256.
func (s *SnapshotSource) Finish(want *store.SnapshotInfo) error {
	if s.over {
		return s.tooLarge()
	}
	sum := hex.EncodeToString(s.h.Sum(nil))
	if want.SHA256 != "" && want.SHA256 != sum {
		return fmt.Errorf("%w: the data's sha256 is %s, the caller expected %s", domain.ErrInvalid, sum, want.SHA256)
	}
	if want.Size != 0 && want.Size != s.n {
		return fmt.Errorf("%w: the data has %d bytes, the caller expected %d", domain.ErrInvalid, s.n, want.Size)
	}
	want.SHA256, want.Size = sum, s.n
	return nil
}

// VerifiedReader returns the data of info, opened by open on the first Read
// (so that returning the info costs no data transfer) and checked against
// info's size and SHA-256: the Read that reaches the end returns an error
// wrapping store.ErrSnapshotCorrupt instead of io.EOF on a mismatch.
func VerifiedReader(info store.SnapshotInfo, open func() (io.ReadCloser, error)) io.ReadCloser {
	return &verified{info: info, open: open, h: sha256.New()}
}

type verified struct {
	info store.SnapshotInfo
	open func() (io.ReadCloser, error)

	mu     sync.Mutex
	rc     io.ReadCloser
	h      hash.Hash
	n      int64
	err    error // sticky
	closed bool
}

func (v *verified) Read(p []byte) (int, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.err != nil {
		return 0, v.err
	}
	if v.closed {
		return 0, errors.New("read of a closed snapshot")
	}
	if v.rc == nil {
		rc, err := v.open()
		if err != nil {
			v.err = err
			return 0, err
		}
		v.rc = rc
	}
	n, err := v.rc.Read(p)
	v.n += int64(n)
	v.h.Write(p[:n])
	if v.n > v.info.Size {
		v.err = v.corrupt(fmt.Sprintf("more than the %d bytes recorded", v.info.Size))
		return 0, v.err
	}
	switch {
	case err == io.EOF:
		if v.n != v.info.Size {
			v.err = v.corrupt(fmt.Sprintf("%d bytes instead of %d", v.n, v.info.Size))
		} else if sum := hex.EncodeToString(v.h.Sum(nil)); sum != v.info.SHA256 {
			v.err = v.corrupt(fmt.Sprintf("sha256 %s instead of %s", sum, v.info.SHA256))
		} else {
			v.err = io.EOF
		}
		return n, v.err
	case err != nil:
		v.err = err
	}
	return n, err
}

func (v *verified) corrupt(detail string) error {
	return fmt.Errorf("snapshot %s of task %s: %w: %s", v.info.ID, v.info.TaskID, store.ErrSnapshotCorrupt, detail)
}

func (v *verified) Close() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return nil
	}
	v.closed = true
	if v.rc != nil {
		return v.rc.Close()
	}
	return nil
}
