package explorer

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/catalyst/catalyst/internal/agent"
	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/llm"
)

//go:embed prompts/system.md
var systemPrompt string

//go:embed schema.json
var answerSchema []byte

// analysis is the analyse step's artifact.
type analysis struct {
	Brief     string            `json:"brief"`
	Risks     []domain.ScanRisk `json:"risks"`
	Proposals []string          `json:"proposals"`
	// WrittenBy is "rules" or the model (provider/model) that wrote the brief.
	WrittenBy string `json:"written_by"`
	// Dropped lists the model's risks that cited no existing fact.
	Dropped []droppedRisk `json:"dropped,omitempty"`
}

type droppedRisk struct {
	Title string   `json:"title"`
	Cited []string `json:"cited"`
}

// answer is the model's structured answer (schema.json).
type answer struct {
	Brief string `json:"brief"`
	Risks []struct {
		Title    string   `json:"title"`
		Severity string   `json:"severity"`
		FactIDs  []string `json:"fact_ids"`
	} `json:"risks"`
	Proposals []string `json:"proposals"`
}

// Bounds on what the model's answer may put on the scan.
const (
	maxBriefRunes    = 6000
	maxTitleRunes    = 500
	maxProposalRunes = 1000
	maxModelRisks    = 40
	maxProposals     = 30
	// maxPromptFacts bounds the facts text sent to the model.
	maxPromptFacts = 96 << 10
)

func (s *Service) analyse(ctx context.Context, in agent.Input) (agent.Output, error) {
	sc, err := s.scanOf(ctx, in.Task)
	if err != nil {
		return agent.Output{}, err
	}
	if _, err := s.markRunning(ctx, sc.ID, nil); err != nil {
		return agent.Output{}, err
	}
	var g gathered
	if a, ok := in.Artifacts[domain.NodeGather]; ok {
		if err := json.Unmarshal(a.Output, &g); err != nil {
			return agent.Output{}, fmt.Errorf("gather artifact: %w", err)
		}
	}
	ruleRisks, ruleProposals := Evaluate(g.Facts, s.opt.Now())
	in.Log(agent.Info, fmt.Sprintf("Rules found %s in %s", count(len(ruleRisks), "risk", "risks"), count(len(g.Facts), "fact", "facts")))

	res := analysis{Risks: ruleRisks}
	var out agent.Output
	sel := llm.Selection{Provider: llm.ProviderOffline}
	if s.opt.Models != nil {
		sel = s.opt.Models.Describe(AgentName)
	}
	if s.opt.Models == nil || sel.Offline() {
		res.Brief, res.Proposals, res.WrittenBy = rulesBrief(sc, g, ruleRisks, ""), ruleProposals, "rules"
		in.Log(agent.Info, "No model is configured: brief and proposals are written by rules")
	} else {
		a, resp, err := s.ask(ctx, in, sc, g, ruleRisks)
		if resp != nil {
			out.Usage, out.Cost, out.Served = resp.Usage, resp.Cost, agent.ServedBy(resp)
		}
		switch {
		case ctx.Err() != nil:
			return agent.Output{}, ctx.Err()
		case err != nil:
			// The rule risks stand without a model; the brief says why it
			// was written by rules.
			in.Log(agent.Warn, "The model call failed; brief and proposals are written by rules: "+err.Error())
			res.Brief, res.Proposals, res.WrittenBy = rulesBrief(sc, g, ruleRisks, "the model call failed"), ruleProposals, "rules"
		default:
			res.WrittenBy = sel.Label()
			if out.Served.Offline {
				res.WrittenBy = "rules"
			}
			s.merge(&res, a, g.Facts, ruleProposals, in.Log)
		}
	}
	in.Log(agent.Info, fmt.Sprintf("Analysis: %s, %s", count(len(res.Risks), "risk", "risks"), count(len(res.Proposals), "proposal", "proposals")))
	b, err := json.Marshal(res)
	out.Artifact = b
	return out, err
}

// ask has the model write brief, risks and proposals over the facts.
func (s *Service) ask(ctx context.Context, in agent.Input, sc domain.ExplorerScan, g gathered, ruleRisks []domain.ScanRisk) (answer, *llm.Response, error) {
	var a answer
	m := s.opt.Models.For(AgentName)
	if m == nil {
		return a, nil, fmt.Errorf("no model for the explorer")
	}
	resp, err := m.Generate(ctx, llm.Request{
		Agent:      AgentName,
		System:     systemPrompt,
		Context:    FactsPrompt(sc, g.Facts, g.Sources, ruleRisks),
		Messages:   []llm.Message{{Role: llm.RoleUser, Content: "Write the brief, the additional risks and the proposals for this system as one JSON object."}},
		Schema:     answerSchema,
		SchemaName: AgentName,
		OnDelta:    in.Delta,
	})
	if err != nil {
		return a, resp, err
	}
	doc := resp.JSON
	if len(doc) == 0 {
		if doc, err = llm.ExtractJSON(resp.Text); err != nil {
			return a, resp, fmt.Errorf("answer rejected: %w", err)
		}
	}
	// Model output is untrusted: check it even if the provider did.
	sch, err := llm.CompileSchema(answerSchema)
	if err != nil {
		return a, resp, err
	}
	if v := llm.ValidateJSON(sch, doc); v != "" {
		return a, resp, fmt.Errorf("answer rejected: %s", v)
	}
	if err := json.Unmarshal(doc, &a); err != nil {
		return a, resp, fmt.Errorf("answer rejected: %w", err)
	}
	return a, resp, nil
}

// merge adds the model's answer to res: the rule risks stay first and
// whole; a model risk keeps only the fact ids that exist and is dropped
// (and logged) when none does; a model risk citing exactly a rule risk's
// facts repeats it and is left out.
func (s *Service) merge(res *analysis, a answer, facts []domain.ScanFact, ruleProposals []string, log func(level, msg string)) {
	byID := make(map[string]domain.ScanFact, len(facts))
	for _, f := range facts {
		byID[f.ID] = f
	}
	known := map[string]bool{}
	for _, r := range res.Risks {
		known[citeKey(r)] = true
	}
	res.Brief = truncateRunes(strings.TrimSpace(a.Brief), maxBriefRunes)
	if res.Brief == "" {
		res.Brief = "The model wrote no brief."
	}
	var model []domain.ScanRisk
	for _, r := range a.Risks {
		title := truncateRunes(strings.Join(strings.Fields(r.Title), " "), maxTitleRunes)
		var cited []domain.ScanFact
		seen := map[string]bool{}
		for _, id := range r.FactIDs {
			if f, ok := byID[id]; ok && !seen[id] {
				seen[id] = true
				cited = append(cited, f)
			}
		}
		if len(cited) == 0 || title == "" {
			res.Dropped = append(res.Dropped, droppedRisk{Title: title, Cited: r.FactIDs})
			log(agent.Warn, fmt.Sprintf("Dropped a risk of the model that cites no existing fact: %q (cited: %s)",
				truncateRunes(title, 120), truncateRunes(strings.Join(r.FactIDs, ", "), 200)))
			continue
		}
		if len(cited) < len(r.FactIDs) {
			log(agent.Warn, fmt.Sprintf("A risk of the model cites fact ids that do not exist; only the existing ones are kept: %q", truncateRunes(title, 120)))
		}
		sev := r.Severity
		if severityRank(sev) == len(severities) {
			sev = "medium"
		}
		risk := domain.ScanRisk{Title: title, Severity: sev, By: "model", Evidence: evidence(cited)}
		if known[citeKey(risk)] {
			continue
		}
		known[citeKey(risk)] = true
		if len(model) < maxModelRisks {
			model = append(model, risk)
		}
	}
	sort.SliceStable(model, func(i, j int) bool { return severityRank(model[i].Severity) < severityRank(model[j].Severity) })
	res.Risks = append(res.Risks, model...)
	for _, p := range a.Proposals {
		p = truncateRunes(strings.TrimSpace(p), maxProposalRunes)
		if p != "" && len(res.Proposals) < maxProposals {
			res.Proposals = append(res.Proposals, p)
		}
	}
	if len(res.Proposals) == 0 {
		res.Proposals = ruleProposals
	}
}

func citeKey(r domain.ScanRisk) string {
	ids := make([]string, 0, len(r.Evidence))
	for _, e := range r.Evidence {
		ids = append(ids, e.FactID)
	}
	slices.Sort(ids)
	return strings.Join(ids, "\x00")
}

// attrSafe keeps a value fit for an attribute of the data delimiters.
var attrUnsafe = regexp.MustCompile(`[^A-Za-z0-9._:-]`)

// EscapeData makes text safe inside an <untrusted-data> block: no '<' or
// '>' survives, so the text can neither close its block nor open another.
func EscapeData(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// FactsPrompt renders the scan for the model: the system name and every
// fact as data blocks, then the rule risks (which cite facts by id).
func FactsPrompt(sc domain.ExplorerScan, facts []domain.ScanFact, sources []domain.ScanSource, ruleRisks []domain.ScanRisk) string {
	var b strings.Builder
	b.WriteString("# System\n")
	b.WriteString(`<untrusted-data source="request">` + EscapeData(sc.SystemName) + "</untrusted-data>\n\n")
	b.WriteString("# Sources\n")
	for _, s := range sources {
		fmt.Fprintf(&b, "- %s: %s", attrUnsafe.ReplaceAllString(s.Source, "_"), s.Status)
		if s.Error != "" {
			b.WriteString(` <untrusted-data source="error">` + EscapeData(s.Error) + "</untrusted-data>")
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "\n# Facts (%d)\nEach block holds one fact as JSON; its id is the block's fact attribute.\n", len(facts))
	written := 0
	for _, f := range facts {
		j, err := json.Marshal(f) // escapes <, > and & as \u003c, \u003e, \u0026
		if err != nil {
			continue
		}
		block := fmt.Sprintf("<untrusted-data source=%q fact=%q>\n%s\n</untrusted-data>\n",
			attrUnsafe.ReplaceAllString(f.Source, "_"), attrUnsafe.ReplaceAllString(f.ID, "_"), EscapeData(string(j)))
		if b.Len()+len(block) > maxPromptFacts {
			fmt.Fprintf(&b, "(%d more facts not shown: size limit)\n", len(facts)-written)
			break
		}
		b.WriteString(block)
		written++
	}
	b.WriteString("\n# Risks found by rules (kept whatever you answer)\n")
	if len(ruleRisks) == 0 {
		b.WriteString("(none)\n")
	}
	for _, r := range ruleRisks {
		ids := make([]string, 0, len(r.Evidence))
		for _, e := range r.Evidence {
			ids = append(ids, e.FactID)
		}
		fmt.Fprintf(&b, "- [%s] %s (facts: %s)\n", r.Severity, EscapeData(r.Title), EscapeData(strings.Join(ids, ", ")))
	}
	return b.String()
}

// rulesBrief writes the brief from the facts alone, and says so.
func rulesBrief(sc domain.ExplorerScan, g gathered, risks []domain.ScanRisk, why string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Written by rules from %s; no model was used", count(len(g.Facts), "fact", "facts"))
	if why != "" {
		b.WriteString(" (" + why + ")")
	}
	b.WriteString(". ")
	fmt.Fprintf(&b, "%s: ", sc.SystemName)
	var ok, failed []string
	for _, s := range g.Sources {
		switch s.Status {
		case "ok":
			ok = append(ok, s.Source)
		case "failed":
			failed = append(failed, s.Source)
		}
	}
	if len(ok) == 0 {
		b.WriteString("no source could be read")
	} else {
		b.WriteString("read from " + strings.Join(ok, ", "))
	}
	if len(failed) > 0 {
		b.WriteString("; unreachable: " + strings.Join(failed, ", "))
	}
	b.WriteString(". ")
	for _, f := range g.Facts {
		if f.Kind == "languages" || f.Kind == "repository" || f.Kind == "activity" || f.Kind == "contributors" {
			b.WriteString(strings.TrimSuffix(f.Summary, ".") + ". ")
		}
	}
	bySev := map[string]int{}
	for _, r := range risks {
		bySev[r.Severity]++
	}
	if len(risks) == 0 {
		b.WriteString("The rules found no risk in these facts.")
	} else {
		var parts []string
		for _, s := range severities {
			if n := bySev[s]; n > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", n, s))
			}
		}
		fmt.Fprintf(&b, "The rules found %s (%s).", count(len(risks), "risk", "risks"), strings.Join(parts, ", "))
	}
	return truncateRunes(b.String(), maxBriefRunes)
}

func (s *Service) report(ctx context.Context, in agent.Input) (agent.Output, error) {
	sc, err := s.scanOf(ctx, in.Task)
	if err != nil {
		return agent.Output{}, err
	}
	var res analysis
	a, ok := in.Artifacts[domain.NodeAnalyse]
	if !ok {
		return agent.Output{}, fmt.Errorf("no analysis to report")
	}
	if err := json.Unmarshal(a.Output, &res); err != nil {
		return agent.Output{}, fmt.Errorf("analyse artifact: %w", err)
	}
	lines := make([]string, 0, len(res.Risks))
	for _, r := range res.Risks {
		lines = append(lines, RiskLine(r))
	}
	if res.Proposals == nil {
		res.Proposals = []string{}
	}
	if res.Risks == nil {
		res.Risks = []domain.ScanRisk{}
	}
	_, err = s.opt.Store.UpdateScan(ctx, sc.ID, func(sc *domain.ExplorerScan) error {
		sc.Status, sc.Error = domain.ScanCompleted, ""
		sc.Brief, sc.Risks, sc.RiskDetails, sc.Proposals = res.Brief, lines, res.Risks, res.Proposals
		sc.Cost = in.Task.Cost // gather and analyse: the report makes no model call
		return nil
	})
	if err != nil {
		return agent.Output{}, err
	}
	in.Log(agent.Info, fmt.Sprintf("Scan stored: %s, %s (brief written by %s)",
		count(len(res.Risks), "risk", "risks"), count(len(res.Proposals), "proposal", "proposals"), res.WrittenBy))
	return agent.Output{Artifact: json.RawMessage(`{"stored":true}`)}, nil
}

// RiskLine is a risk as one line of the original's risks array:
// "[severity] title (facts: id, ...)".
func RiskLine(r domain.ScanRisk) string {
	ids := make([]string, 0, len(r.Evidence))
	for _, e := range r.Evidence {
		ids = append(ids, e.FactID)
	}
	return fmt.Sprintf("[%s] %s (facts: %s)", r.Severity, r.Title, list(ids))
}
