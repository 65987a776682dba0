package events

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/catalyst/catalyst/internal/domain"
)

// RecordChanges records the events a transition of t implied, in order.
// Events of a task served by the offline provider say so in their message,
// so no reader mistakes the demonstration for a model's work. They are
// recorded even when ctx is cancelled (a cancelled run still reports).
func (r *Recorder) RecordChanges(ctx context.Context, t domain.Task, changes []domain.Change) error {
	ctx = context.WithoutCancel(ctx)
	for _, c := range changes {
		if _, err := r.Record(ctx, ChangeLog(t, c)); err != nil {
			return err
		}
	}
	return nil
}

// ChangeLog is the stored event of a change of t.
func ChangeLog(t domain.Task, c domain.Change) domain.AgentLog {
	msg := c.Message
	if t.Offline && !strings.Contains(msg, domain.OfflineLabel) {
		msg += " [" + domain.OfflineLabel + "]"
	}
	l := domain.AgentLog{TaskID: t.ID, Type: c.Type, AgentName: c.Agent, Level: c.Level, Message: msg}
	if c.Data != nil {
		if b, err := json.Marshal(c.Data); err == nil {
			l.Data = b
		}
	}
	return l
}
