package storeutil

import (
	"bytes"
	"encoding/json"

	"github.com/catalyst/catalyst/internal/domain"
)

// DecodeFacts reads a scan's stored facts. Scans stored before the explorer
// ran as a task held a free-form object there (never filled in by anything
// but tests); it reads as no facts rather than failing the whole document.
func DecodeFacts(b []byte) ([]domain.ScanFact, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '[' {
		return nil, nil
	}
	var out []domain.ScanFact
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	return out, nil
}
