package api

import (
	"fmt"
	"strconv"

	"github.com/catalyst/catalyst/internal/events"
)

// terminalGrace is how long a stream of a task already over waits for its
// terminal event (see events.TerminalGrace).
const terminalGrace = events.TerminalGrace

// parseSeq parses an ?after= or Last-Event-ID value.
func parseSeq(raw string) (int64, error) {
	if raw == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("after must be a non-negative event seq, got %q", raw)
	}
	return n, nil
}
