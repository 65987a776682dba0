package agent

import (
	"context"
	"fmt"
	"strings"
)

// DesignOutput is the architect's artifact.
type DesignOutput struct {
	Stack struct {
		Language    string   `json:"language"`
		Runtime     string   `json:"runtime"`
		Framework   string   `json:"framework"`
		TestCommand []string `json:"test_command"`
	} `json:"stack"`
	Components []struct {
		Name           string `json:"name"`
		Responsibility string `json:"responsibility"`
	} `json:"components"`
	Files []struct {
		Path    string `json:"path"`
		Purpose string `json:"purpose"`
	} `json:"files"`
	Interfaces []struct {
		Name        string `json:"name"`
		Description string `json:"description"`
	} `json:"interfaces"`
}

// Architect designs the stack, components, files and interfaces.
type Architect struct{ Deps }

// Run asks the model for the design.
func (a *Architect) Run(ctx context.Context, in Input) (Output, error) {
	in.Log(Info, "Designing the project from the plan")
	var c call
	var d DesignOutput
	if err := c.ask(ctx, a.Deps, in, "architect", prompt("architect"), taskContext(in),
		"Design the project for the task and plan above.", &d); err != nil {
		return Output{}, err
	}
	var paths []string
	for _, f := range d.Files {
		paths = append(paths, f.Path)
	}
	in.Log(Info, fmt.Sprintf("Stack: %s on %s (%s); tests: %s", d.Stack.Language, d.Stack.Runtime, d.Stack.Framework, strings.Join(d.Stack.TestCommand, " ")))
	in.Log(Info, fmt.Sprintf("%s, %s: %s", plural(len(d.Components), "component", "components"), plural(len(d.Files), "file", "files"), strings.Join(paths, ", ")))
	return c.result(d)
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
