// Package schemas holds the JSON Schemas of the agents' structured answers,
// embedded so that prompts, providers and tests share one definition.
package schemas

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

//go:embed *.json
var files embed.FS

// Names of the schemas: one per agent that asks a model for structure.
const (
	Planner   = "planner"
	Architect = "architect"
	Coder     = "coder"
	Tester    = "tester"
	Reviewer  = "reviewer"
)

// Get returns the schema named name; it panics on an unknown name (a
// programming error: the names are constants).
func Get(name string) json.RawMessage {
	b, err := files.ReadFile(name + ".json")
	if err != nil {
		panic(fmt.Sprintf("schemas: unknown schema %q", name))
	}
	return b
}

var (
	mu       sync.Mutex
	compiled = map[string]*jsonschema.Schema{}
)

// Validate checks doc against the schema named name.
func Validate(name string, doc []byte) error {
	mu.Lock()
	s, ok := compiled[name]
	if !ok {
		raw, err := jsonschema.UnmarshalJSON(bytes.NewReader(Get(name)))
		if err != nil {
			mu.Unlock()
			return err
		}
		c := jsonschema.NewCompiler()
		url := "mem:///" + name + ".json"
		if err := c.AddResource(url, raw); err != nil {
			mu.Unlock()
			return err
		}
		if s, err = c.Compile(url); err != nil {
			mu.Unlock()
			return err
		}
		compiled[name] = s
	}
	mu.Unlock()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return fmt.Errorf("%s: not JSON: %w", name, err)
	}
	if err := s.Validate(v); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}
