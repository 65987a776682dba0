package agent

import (
	"context"
	"fmt"
)

// PlanOutput is the planner's artifact.
type PlanOutput struct {
	Summary      string   `json:"summary"`
	Requirements []string `json:"requirements"`
	UserStories  []struct {
		Title              string   `json:"title"`
		Story              string   `json:"story"`
		AcceptanceCriteria []string `json:"acceptance_criteria"`
	} `json:"user_stories"`
}

// Planner turns the prompt into requirements and user stories.
type Planner struct{ Deps }

// Run asks the model for the plan.
func (p *Planner) Run(ctx context.Context, in Input) (Output, error) {
	in.Log(Info, "Analysing the request: "+oneLine(in.Task.Prompt, 120))
	var c call
	var plan PlanOutput
	if err := c.ask(ctx, p.Deps, in, "planner", prompt("planner"), taskContext(in),
		"Write the plan for the task above.", &plan); err != nil {
		return Output{}, err
	}
	in.Log(Info, fmt.Sprintf("Plan: %s (%s, %s)", plan.Summary,
		plural(len(plan.Requirements), "requirement", "requirements"),
		plural(len(plan.UserStories), "user story", "user stories")))
	for _, s := range plan.UserStories {
		in.Log(Info, fmt.Sprintf("Story %q: %s", s.Title, plural(len(s.AcceptanceCriteria), "acceptance criterion", "acceptance criteria")))
	}
	return c.result(plan)
}
