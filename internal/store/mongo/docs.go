package mongo

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/store/internal/storeutil"
)

// The storage documents. They are separate from the domain types so that the
// domain stays free of bson tags and the tolerant decoding of documents
// written by the original Python backend stays here. Field names are the
// domain types' JSON names. No field is omitempty: updates $set whole
// documents, and an omitted empty field would leave the old value in place.

type projectDoc struct {
	ID          string `bson:"id"`
	Name        string `bson:"name"`
	Description string `bson:"description"`
	Status      string `bson:"status"`
	GitHubRepo  string `bson:"github_repo"`
	RepoURL     string `bson:"repo_url"`
	// RepoCredential is the name of an environment variable, never a secret.
	RepoCredential string   `bson:"repo_credential"`
	OwnerID        string   `bson:"owner_id"`
	CreatedAt      flexTime `bson:"created_at"`
	UpdatedAt      flexTime `bson:"updated_at"`
	Version        int64    `bson:"version"`
}

type memberDoc struct {
	ProjectID string   `bson:"project_id"`
	UserID    string   `bson:"user_id"`
	Role      string   `bson:"role"`
	AddedBy   string   `bson:"added_by"`
	CreatedAt flexTime `bson:"created_at"`
	UpdatedAt flexTime `bson:"updated_at"`
}

func (d *memberDoc) domain() domain.Member {
	return domain.Member{ProjectID: d.ProjectID, UserID: d.UserID, Role: domain.ProjectRole(d.Role), AddedBy: d.AddedBy,
		CreatedAt: d.CreatedAt.t, UpdatedAt: d.UpdatedAt.orElse(d.CreatedAt)}
}

type taskDoc struct {
	ID           string             `bson:"id"`
	ProjectID    string             `bson:"project_id"`
	Prompt       string             `bson:"prompt"`
	GraphState   map[string]string  `bson:"graph_state"`
	Status       string             `bson:"status"`
	Cost         float64            `bson:"cost"`
	NodeCosts    map[string]float64 `bson:"node_costs"`
	Error        string             `bson:"error"`
	FixIteration int                `bson:"fix_iteration"`
	Provider     string             `bson:"provider"`
	CreatedAt    flexTime           `bson:"created_at"`
	UpdatedAt    flexTime           `bson:"updated_at"`
	StartedAt    *flexTime          `bson:"started_at"`
	FinishedAt   *flexTime          `bson:"finished_at"`
	Kind         string             `bson:"kind"`
	Model        string             `bson:"model"`
	Offline      bool               `bson:"offline"`
	LeaseOwner   string             `bson:"lease_owner"`
	LeaseExpires *flexTime          `bson:"lease_expires_at"`
	CreatedBy    string             `bson:"created_by"`
	Version      int64              `bson:"version"`
}

type logDoc struct {
	ID        string   `bson:"id"`
	TaskID    string   `bson:"task_id"`
	Seq       int64    `bson:"seq"`
	Type      string   `bson:"type"`
	AgentName string   `bson:"agent_name"`
	Message   string   `bson:"message"`
	Level     string   `bson:"level"`
	Data      jsonText `bson:"data"`
	Timestamp flexTime `bson:"timestamp"`
}

type artifactDoc struct {
	TaskID    string   `bson:"task_id"`
	Node      string   `bson:"node"`
	Iteration int      `bson:"iteration"`
	Output    jsonText `bson:"output"`
	Cost      float64  `bson:"cost"`
	Usage     usageDoc `bson:"usage"`
	CreatedAt flexTime `bson:"created_at"`
}

type usageDoc struct {
	InputTokens      int64 `bson:"input_tokens"`
	OutputTokens     int64 `bson:"output_tokens"`
	CacheReadTokens  int64 `bson:"cache_read_tokens"`
	CacheWriteTokens int64 `bson:"cache_write_tokens"`
}

type deploymentDoc struct {
	ID             string   `bson:"id"`
	TaskID         string   `bson:"task_id"`
	URL            string   `bson:"url"`
	CommitSHA      string   `bson:"commit_sha"`
	Cost           float64  `bson:"cost"`
	Report         string   `bson:"report"`
	Mock           bool     `bson:"mock"`
	Branch         string   `bson:"branch"`
	PullRequestURL string   `bson:"pull_request_url"`
	CreatedAt      flexTime `bson:"created_at"`
}

type scanDoc struct {
	ID          string   `bson:"id"`
	SystemName  string   `bson:"system_name"`
	RepoURL     string   `bson:"repo_url"`
	JiraProject string   `bson:"jira_project"`
	Status      string   `bson:"status"`
	Brief       string   `bson:"brief"`
	Risks       []string `bson:"risks"`
	Proposals   []string `bson:"proposals"`
	Facts       jsonText `bson:"facts"`
	// Added with explore tasks; absent in the original's documents.
	ServiceNowCI string   `bson:"servicenow_ci"`
	GitHubRepo   string   `bson:"github_repo"`
	TaskID       string   `bson:"task_id"`
	Sources      jsonText `bson:"sources"`
	RiskDetails  jsonText `bson:"risk_details"`
	Error        string   `bson:"error"`
	Cost         float64  `bson:"cost"`
	CreatedAt    flexTime `bson:"created_at"`
	UpdatedAt    flexTime `bson:"updated_at"`
	OwnerID      string   `bson:"owner_id"`
	ProjectID    string   `bson:"project_id"`
	Version      int64    `bson:"version"`
}

// ---- conversions

func toProjectDoc(p *domain.Project) projectDoc {
	return projectDoc{ID: p.ID, Name: p.Name, Description: p.Description, Status: string(p.Status),
		GitHubRepo: p.GitHubRepo, RepoURL: p.RepoURL, RepoCredential: p.RepoCredential, OwnerID: p.OwnerID, CreatedAt: newFlexTime(p.CreatedAt), UpdatedAt: newFlexTime(p.UpdatedAt)}
}

func (d *projectDoc) domain() domain.Project {
	p := domain.Project{ID: d.ID, Name: d.Name, Description: d.Description, Status: domain.ProjectStatus(d.Status),
		GitHubRepo: d.GitHubRepo, RepoURL: d.RepoURL, RepoCredential: d.RepoCredential, OwnerID: d.OwnerID, CreatedAt: d.CreatedAt.t, UpdatedAt: d.UpdatedAt.orElse(d.CreatedAt)}
	if p.Status == "" {
		p.Status = domain.ProjectActive
	}
	return p
}

func toTaskDoc(t *domain.Task) taskDoc {
	d := taskDoc{ID: t.ID, ProjectID: t.ProjectID, Prompt: t.Prompt, Status: string(t.Status), Cost: t.Cost,
		NodeCosts: t.NodeCosts, Error: t.Error, FixIteration: t.FixIteration, Provider: t.Provider,
		CreatedAt: newFlexTime(t.CreatedAt), UpdatedAt: newFlexTime(t.UpdatedAt),
		StartedAt: newFlexTimePtr(t.StartedAt), FinishedAt: newFlexTimePtr(t.FinishedAt), Version: t.Version,
		Kind: t.KindOf(), Model: t.Model, Offline: t.Offline, LeaseOwner: t.LeaseOwner, LeaseExpires: newFlexTimePtr(t.LeaseExpiresAt),
		CreatedBy: t.CreatedBy}
	if t.GraphState != nil {
		d.GraphState = make(map[string]string, len(t.GraphState))
		for k, v := range t.GraphState {
			d.GraphState[k] = string(v)
		}
	}
	return d
}

func (d *taskDoc) domain() domain.Task {
	t := domain.Task{ID: d.ID, ProjectID: d.ProjectID, Prompt: d.Prompt, Status: domain.TaskStatus(d.Status),
		Cost: d.Cost, NodeCosts: d.NodeCosts, Error: d.Error, FixIteration: d.FixIteration, Provider: d.Provider,
		CreatedAt: d.CreatedAt.t, UpdatedAt: d.UpdatedAt.orElse(d.CreatedAt),
		StartedAt: d.StartedAt.ptr(), FinishedAt: d.FinishedAt.ptr(), Version: d.Version,
		Kind: d.Kind, Model: d.Model, Offline: d.Offline, LeaseOwner: d.LeaseOwner, LeaseExpiresAt: d.LeaseExpires.ptr(),
		CreatedBy: d.CreatedBy}
	t.Kind = t.KindOf()
	t.NormalizeServed()
	if d.GraphState != nil {
		t.GraphState = make(map[string]domain.NodeState, len(d.GraphState))
		for k, v := range d.GraphState {
			t.GraphState[k] = domain.NodeState(v)
		}
	}
	return t
}

func toLogDoc(l *domain.AgentLog) logDoc {
	return logDoc{ID: l.ID, TaskID: l.TaskID, Seq: l.Seq, Type: string(l.Type), AgentName: l.AgentName,
		Message: l.Message, Level: l.Level, Data: jsonText(l.Data), Timestamp: newFlexTime(l.Timestamp)}
}

func (d *logDoc) domain() domain.AgentLog {
	l := domain.AgentLog{ID: d.ID, TaskID: d.TaskID, Seq: d.Seq, Type: domain.EventType(d.Type),
		AgentName: d.AgentName, Message: d.Message, Level: d.Level, Data: json.RawMessage(d.Data),
		Timestamp: d.Timestamp.t}
	if l.Type == "" { // the original's logs were all plain lines
		l.Type = domain.EventLog
	}
	return l
}

func toArtifactDoc(a *domain.Artifact) artifactDoc {
	return artifactDoc{TaskID: a.TaskID, Node: a.Node, Iteration: a.Iteration, Output: jsonText(a.Output),
		Cost: a.Cost, Usage: usageDoc(a.Usage), CreatedAt: newFlexTime(a.CreatedAt)}
}

func (d *artifactDoc) domain() domain.Artifact {
	return domain.Artifact{TaskID: d.TaskID, Node: d.Node, Iteration: d.Iteration, Output: json.RawMessage(d.Output),
		Cost: d.Cost, Usage: domain.Usage(d.Usage), CreatedAt: d.CreatedAt.t}
}

func toDeploymentDoc(x *domain.Deployment) deploymentDoc {
	return deploymentDoc{ID: x.ID, TaskID: x.TaskID, URL: x.URL, CommitSHA: x.CommitSHA, Cost: x.Cost,
		Report: x.Report, Mock: x.Mock, Branch: x.Branch, PullRequestURL: x.PullRequestURL,
		CreatedAt: newFlexTime(x.CreatedAt)}
}

func (d *deploymentDoc) domain() domain.Deployment {
	return domain.Deployment{ID: d.ID, TaskID: d.TaskID, URL: d.URL, CommitSHA: d.CommitSHA, Cost: d.Cost,
		Report: d.Report, Mock: d.Mock, Branch: d.Branch, PullRequestURL: d.PullRequestURL, CreatedAt: d.CreatedAt.t}
}

func toScanDoc(s *domain.ExplorerScan) (scanDoc, error) {
	d := scanDoc{ID: s.ID, SystemName: s.SystemName, RepoURL: s.RepoURL, JiraProject: s.JiraProject,
		ServiceNowCI: s.ServiceNowCI, GitHubRepo: s.GitHubRepo, TaskID: s.TaskID,
		Status: string(s.Status), Brief: s.Brief, Risks: s.Risks, Proposals: s.Proposals, Error: s.Error,
		Cost: s.Cost, CreatedAt: newFlexTime(s.CreatedAt), UpdatedAt: newFlexTime(s.UpdatedAt),
		OwnerID: s.OwnerID, ProjectID: s.ProjectID}
	for _, f := range []struct {
		name string
		v    any
		nil  bool
		dst  *jsonText
	}{
		{"facts", s.Facts, s.Facts == nil, &d.Facts},
		{"sources", s.Sources, s.Sources == nil, &d.Sources},
		{"risk_details", s.RiskDetails, s.RiskDetails == nil, &d.RiskDetails},
	} {
		if f.nil {
			continue
		}
		b, err := json.Marshal(f.v)
		if err != nil {
			return d, fmt.Errorf("%w: %s: %v", domain.ErrInvalid, f.name, err)
		}
		*f.dst = b
	}
	return d, nil
}

func (d *scanDoc) domain() (domain.ExplorerScan, error) {
	s := domain.ExplorerScan{ID: d.ID, SystemName: d.SystemName, RepoURL: d.RepoURL, JiraProject: d.JiraProject,
		ServiceNowCI: d.ServiceNowCI, GitHubRepo: d.GitHubRepo, TaskID: d.TaskID,
		Status: domain.ScanStatus(d.Status), Brief: d.Brief, Risks: d.Risks, Proposals: d.Proposals, Error: d.Error,
		Cost: d.Cost, CreatedAt: d.CreatedAt.t, UpdatedAt: d.UpdatedAt.orElse(d.CreatedAt),
		OwnerID: d.OwnerID, ProjectID: d.ProjectID}
	if s.Status == "" { // the original stored a scan once it was done
		s.Status = domain.ScanCompleted
	}
	var err error
	if s.Facts, err = storeutil.DecodeFacts(d.Facts); err != nil {
		return s, fmt.Errorf("scan %s: facts: %w", d.ID, err)
	}
	if d.Sources != nil {
		if err := json.Unmarshal(d.Sources, &s.Sources); err != nil {
			return s, fmt.Errorf("scan %s: sources: %w", d.ID, err)
		}
	}
	if d.RiskDetails != nil {
		if err := json.Unmarshal(d.RiskDetails, &s.RiskDetails); err != nil {
			return s, fmt.Errorf("scan %s: risk_details: %w", d.ID, err)
		}
	}
	return s, nil
}

// ---- flexTime

// flexTime is a timestamp as stored: a BSON date when we wrote it, an ISO
// 8601 string when the original Python backend did ("2025-10-14T09:30:12.123456",
// with or without a zone; zoneless means UTC), or missing. A legacy string is
// kept verbatim so that writing the document back does not move it in the
// created_at order and list cursors can point at it.
type flexTime struct {
	t       time.Time
	legacy  string // the stored string, when it was one
	present bool   // false when missing or null
}

// precision is what a BSON date holds.
const precision = time.Millisecond

func newFlexTime(t time.Time) flexTime {
	return flexTime{t: t.UTC().Truncate(precision), present: true}
}

func newFlexTimePtr(t *time.Time) *flexTime {
	if t == nil {
		return nil
	}
	f := newFlexTime(*t)
	return &f
}

func (f *flexTime) ptr() *time.Time {
	if f == nil || !f.present {
		return nil
	}
	t := f.t
	return &t
}

// orElse returns the time, or other's when this one is missing (documents
// of the original have created_at only).
func (f flexTime) orElse(other flexTime) time.Time {
	if f.present {
		return f.t
	}
	return other.t
}

func (f flexTime) MarshalBSONValue() (byte, []byte, error) {
	var typ bson.Type
	var data []byte
	var err error
	switch {
	case f.legacy != "":
		typ, data, err = bson.MarshalValue(f.legacy)
	case !f.present:
		typ = bson.TypeNull
	default:
		typ, data, err = bson.MarshalValue(bson.NewDateTimeFromTime(f.t))
	}
	return byte(typ), data, err
}

func (f *flexTime) UnmarshalBSONValue(typ byte, data []byte) error {
	*f = flexTime{}
	switch bson.Type(typ) {
	case bson.TypeDateTime:
		f.t = time.UnixMilli(int64(binary.LittleEndian.Uint64(data))).UTC()
		f.present = true
	case bson.TypeString:
		s, ok := bson.RawValue{Type: bson.TypeString, Value: data}.StringValueOK()
		if !ok {
			return fmt.Errorf("malformed string timestamp")
		}
		f.legacy, f.present = s, true
		f.t = parseISO(s) // unparsable: the zero time, rather than an unreadable document
	case bson.TypeNull, bson.TypeUndefined:
	default:
		return fmt.Errorf("timestamp of BSON type %v", bson.Type(typ))
	}
	return nil
}

var isoLayouts = []string{
	"2006-01-02T15:04:05Z07:00", // fractional seconds are accepted after the seconds
	"2006-01-02T15:04:05",
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02 15:04:05",
}

func parseISO(s string) time.Time {
	for _, layout := range isoLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}

// ---- jsonText

// jsonText is a JSON value from the domain (log data, artifact output, scan
// facts), stored as its JSON text: model output may have keys MongoDB
// refuses ("$ref", "a.b") and text round-trips exactly. Reading also accepts
// an embedded document or array.
type jsonText []byte

func (j jsonText) MarshalBSONValue() (byte, []byte, error) {
	if j == nil {
		return byte(bson.TypeNull), nil, nil
	}
	if !json.Valid(j) {
		return 0, nil, fmt.Errorf("%w: not JSON: %.40q", domain.ErrInvalid, j)
	}
	typ, data, err := bson.MarshalValue(string(j))
	return byte(typ), data, err
}

func (j *jsonText) UnmarshalBSONValue(typ byte, data []byte) error {
	switch bson.Type(typ) {
	case bson.TypeNull, bson.TypeUndefined:
		*j = nil
	case bson.TypeString:
		s, ok := bson.RawValue{Type: bson.TypeString, Value: data}.StringValueOK()
		if !ok {
			return fmt.Errorf("malformed JSON text")
		}
		*j = jsonText(s)
	default: // a native value: convert through relaxed extended JSON
		wrapped := bson.D{{Key: "v", Value: bson.RawValue{Type: bson.Type(typ), Value: data}}}
		b, err := bson.MarshalExtJSON(wrapped, false, false)
		if err != nil {
			return err
		}
		var v struct {
			V json.RawMessage `json:"v"`
		}
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*j = jsonText(v.V)
	}
	return nil
}
