package offline

import (
	"encoding/json"
	"fmt"
	"html"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/catalyst/catalyst/internal/llm"
)

// prompt is what the offline provider understands of a request.
type prompt struct {
	text  string // the user's prompt
	title string // a short name for the app
	todo  bool   // the guide's example: a todo app
}

// promptOf finds the user's prompt: the "# Task" section of the request
// context (the convention of internal/agent), else the whole context, else
// the first message.
func promptOf(req llm.Request) prompt {
	text := section(req.Context, "Task")
	if text == "" {
		text = strings.TrimSpace(req.Context)
	}
	if text == "" && len(req.Messages) > 0 {
		text = strings.TrimSpace(req.Messages[0].Content)
	}
	if text == "" {
		text = "an app"
	}
	low := strings.ToLower(text)
	return prompt{
		text:  text,
		title: titleOf(text),
		todo:  strings.Contains(low, "todo") || strings.Contains(low, "to-do") || strings.Contains(low, "to do list"),
	}
}

// section returns the body of the markdown section "# name" in s.
func section(s, name string) string {
	head := "# " + name + "\n"
	i := strings.Index(s, head)
	if i < 0 {
		return ""
	}
	body := s[i+len(head):]
	if j := strings.Index(body, "\n# "); j >= 0 {
		body = body[:j]
	}
	return strings.TrimSpace(body)
}

var verbs = regexp.MustCompile(`(?i)^(please\s+)?(build|create|make|write|generate|develop|implement)\s+(me\s+)?(an?\s+|the\s+)?`)

func titleOf(p string) string {
	t := strings.TrimSpace(verbs.ReplaceAllString(strings.SplitN(p, "\n", 2)[0], ""))
	t = strings.TrimRight(t, ".!?")
	if len(t) > 60 {
		t = strings.TrimSpace(t[:60])
	}
	if t == "" {
		return "App"
	}
	return strings.ToUpper(t[:1]) + t[1:]
}

type story struct {
	Title              string   `json:"title"`
	Story              string   `json:"story"`
	AcceptanceCriteria []string `json:"acceptance_criteria"`
}

func plan(p prompt) any {
	if p.todo {
		return map[string]any{
			"summary": "A single-page todo list that runs in the browser: add, complete, delete and filter todos.",
			"requirements": []string{
				"Add a todo with a title; blank titles are refused",
				"Mark a todo as done and undo it",
				"Delete a todo and clear all completed todos",
				"Filter the list: all, active, completed",
				"Show how many todos are left",
				"Keep the list across reloads when the browser allows storage",
			},
			"user_stories": []story{
				{"Add todos", "As a user I want to add todos so that I remember what to do.",
					[]string{"Typing a title and pressing Add appends it to the list", "A blank title adds nothing"}},
				{"Complete todos", "As a user I want to tick off todos so that I see my progress.",
					[]string{"Ticking a todo strikes it through", "The counter shows the todos left"}},
				{"Tidy the list", "As a user I want to delete and filter todos so that the list stays useful.",
					[]string{"Delete removes one todo", "Clear completed removes every done todo", "Filters show all, active or completed todos"}},
			},
		}
	}
	return map[string]any{
		"summary": fmt.Sprintf("A minimal web app for the request %q that states what it is.", p.text),
		"requirements": []string{
			"Serve a page that names the app and quotes the request",
			"Keep the logic in a module that tests can load",
		},
		"user_stories": []story{
			{"See what the app is", "As a user I want the page to tell me what it is for.",
				[]string{"The page shows the app's title", "The page quotes the original request"}},
		},
	}
}

type stack struct {
	Language    string   `json:"language"`
	Runtime     string   `json:"runtime"`
	Framework   string   `json:"framework"`
	TestCommand []string `json:"test_command"`
}

type named struct {
	Name           string `json:"name"`
	Responsibility string `json:"responsibility"`
}

type filePlan struct {
	Path    string `json:"path"`
	Purpose string `json:"purpose"`
}

type iface struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

func design(p prompt) any {
	st := stack{Language: "javascript", Runtime: "node", Framework: "none (vanilla JS, static files)", TestCommand: []string{"node", "--test"}}
	if p.todo {
		return map[string]any{
			"stack": st,
			"components": []named{
				{"todo logic", "Pure functions over the list of todos (todo.js); no DOM, no storage"},
				{"page", "index.html + style.css: the form, the list and the filters"},
				{"controller", "app.js: wires the logic to the page; storage guarded for sandboxed previews"},
			},
			"files": []filePlan{
				{"index.html", "the page"}, {"style.css", "styles"}, {"todo.js", "todo list logic"},
				{"app.js", "DOM wiring"}, {"todo.test.js", "node --test tests of todo.js"}, {"package.json", "test script"},
			},
			"interfaces": []iface{
				{"addTodo(list, title) -> list", "append a todo; blank titles refused"},
				{"toggleTodo(list, id) / removeTodo(list, id) / clearCompleted(list)", "list transformations without mutation"},
				{"filterTodos(list, filter) / remaining(list)", "views of the list"},
			},
		}
	}
	return map[string]any{
		"stack": st,
		"components": []named{
			{"about", "about.js: what the app is, as data"},
			{"page", "index.html + app.js: shows it"},
		},
		"files": []filePlan{
			{"index.html", "the page"}, {"about.js", "the app's description"}, {"app.js", "DOM wiring"},
			{"about.test.js", "node --test tests"}, {"package.json", "test script"},
		},
		"interfaces": []iface{{"describe() -> {title, request, generator}", "what the app is"}},
	}
}

type file struct {
	Path    string `json:"path"`
	Content string `json:"content"`
}

func code(p prompt) (any, error) {
	files, notes, err := codeFiles(p)
	if err != nil {
		return nil, err
	}
	return map[string]any{"files": files, "delete": []string{}, "notes": notes}, nil
}

// codeFiles is the app the coder writes: the todo app for a todo prompt,
// else a minimal app that says what it is.
func codeFiles(p prompt) ([]file, string, error) {
	var files []file
	if p.todo {
		err := fs.WalkDir(todoApp, "app", func(name string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := todoApp.ReadFile(name)
			if err != nil {
				return err
			}
			files = append(files, file{Path: path.Base(name), Content: string(b)})
			return nil
		})
		if err != nil {
			return nil, "", err
		}
		files = append(files, file{"package.json", packageJSON("todo-app")})
		return files, "Todo app: todo.js holds the logic and is tested with node --test; app.js wires it to index.html.", nil
	}
	js := func(v string) string { b, _ := json.Marshal(v); return string(b) }
	files = []file{
		{"about.js", `// about.js — what this app is, as data the page and the tests share.
(function (root) {
  'use strict';
  function describe() {
    return {
      title: ` + js(p.title) + `,
      request: ` + js(p.text) + `,
      generator: 'Catalyst offline provider (no LLM configured)',
    };
  }
  const api = { describe };
  if (typeof module !== 'undefined' && module.exports) module.exports = api;
  else root.About = api;
})(typeof window !== 'undefined' ? window : globalThis);
`},
		{"app.js", `(function () {
  'use strict';
  const d = window.About.describe();
  document.title = d.title;
  document.getElementById('title').textContent = d.title;
  document.getElementById('request').textContent = d.request;
  document.getElementById('generator').textContent = d.generator;
})();
`},
		{"index.html", `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>` + html.EscapeString(p.title) + `</title>
</head>
<body>
  <main>
    <h1 id="title">` + html.EscapeString(p.title) + `</h1>
    <p>This is a minimal app generated for the request:</p>
    <blockquote id="request">` + html.EscapeString(p.text) + `</blockquote>
    <p>Made by <span id="generator">Catalyst offline provider (no LLM configured)</span>. Configure an LLM to get a real implementation.</p>
  </main>
  <script src="about.js"></script>
  <script src="app.js"></script>
</body>
</html>
`},
		{"about.test.js", `'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { describe } = require('./about.js');

test('describes the app and quotes the request', () => {
  const d = describe();
  assert.equal(d.request, ` + js(p.text) + `);
  assert.ok(d.title.length > 0);
  assert.match(d.generator, /offline provider/);
});
`},
		{"package.json", packageJSON("catalyst-app")},
	}
	return files, "Minimal app that says what it is; configure an LLM for a real implementation.", nil
}

func packageJSON(name string) string {
	return `{
  "name": "` + name + `",
  "version": "0.1.0",
  "private": true,
  "scripts": { "test": "node --test" }
}
`
}

// FilesHeader starts each file that agents quote in a message:
// "=== FILE: path ===" on its own line, then the content.
const filesHeader = "=== FILE: "

type quoted struct {
	path    string
	content string
}

// filesOf parses the files quoted in the request's messages.
func filesOf(req llm.Request) []quoted {
	var out []quoted
	for _, m := range req.Messages {
		lines := strings.Split(m.Content, "\n")
		cur := -1
		for _, l := range lines {
			if strings.HasPrefix(l, filesHeader) && strings.HasSuffix(l, " ===") {
				out = append(out, quoted{path: strings.TrimSuffix(strings.TrimPrefix(l, filesHeader), " ===")})
				cur = len(out) - 1
				continue
			}
			if cur >= 0 {
				out[cur].content += l + "\n"
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out
}

// tests writes a smoke test for code that came without tests.
func tests(req llm.Request) any {
	files := filesOf(req)
	lang := "javascript"
	pkg := "main"
	for _, f := range files {
		switch path.Ext(f.path) {
		case ".py":
			lang = "python"
		case ".go":
			lang = "go"
			for _, l := range strings.Split(f.content, "\n") {
				if strings.HasPrefix(l, "package ") {
					pkg = strings.TrimSpace(strings.TrimPrefix(l, "package "))
					break
				}
			}
		}
	}
	var names []string
	for _, f := range files {
		names = append(names, f.path)
	}
	list, _ := json.Marshal(names)
	var out file
	switch lang {
	case "python":
		out = file{"test_smoke.py", `import os
import unittest

FILES = ` + string(list) + `


class SmokeTest(unittest.TestCase):
    def test_files_exist(self):
        for name in FILES:
            self.assertTrue(os.path.exists(name), name)


if __name__ == "__main__":
    unittest.main()
`}
	case "go":
		out = file{"smoke_test.go", "package " + pkg + `

import (
	"os"
	"testing"
)

func TestFilesExist(t *testing.T) {
	for _, name := range []string{` + strings.Trim(string(list), "[]") + `} {
		if _, err := os.Stat(name); err != nil {
			t.Error(err)
		}
	}
}
`}
	default:
		out = file{"smoke.test.js", `'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');

test('the generated files exist', () => {
  for (const name of ` + string(list) + `) assert.ok(fs.existsSync(name), name);
});
`}
	}
	return map[string]any{"files": []file{out}, "notes": "Smoke test added by the offline provider: the code came without tests."}
}

type finding struct {
	Severity string `json:"severity"`
	File     string `json:"file"`
	Line     int    `json:"line"`
	Message  string `json:"message"`
}

// review approves with informational findings measured on the real files.
func review(req llm.Request) any {
	files := filesOf(req)
	var fs []finding
	tests := 0
	for _, f := range files {
		lines := strings.Count(f.content, "\n")
		if isTest(f.path) {
			tests++
		}
		msg := fmt.Sprintf("%d lines", lines)
		if n := strings.Count(f.content, "function "); n > 0 {
			msg += fmt.Sprintf(", %d functions", n)
		}
		if strings.Contains(f.content, "localStorage") && strings.Contains(f.content, "catch") {
			msg += "; storage access is guarded"
		}
		fs = append(fs, finding{Severity: "info", File: f.path, Line: 1, Message: msg})
	}
	summary := fmt.Sprintf("Read %d files (%d with tests). No blocking issues found by the offline provider (no LLM configured): it checks structure, not behaviour.", len(files), tests)
	if fs == nil {
		fs = []finding{}
	}
	return map[string]any{"approved": true, "summary": summary, "findings": fs}
}

func isTest(p string) bool {
	b := path.Base(p)
	return strings.Contains(b, ".test.") || strings.HasPrefix(b, "test_") || strings.HasSuffix(b, "_test.go") || strings.HasSuffix(b, "_test.py")
}

// explore answers the explorer agent from the facts in its request.
func explore(req llm.Request) any {
	facts := strings.TrimSpace(req.Context)
	for _, m := range req.Messages {
		facts += "\n" + m.Content
	}
	first := strings.TrimSpace(strings.SplitN(strings.TrimSpace(facts), "\n", 2)[0])
	if len(first) > 200 {
		first = first[:200]
	}
	return map[string]any{
		"brief":     "Offline provider (no LLM configured): no analysis was made beyond the measured facts. " + first,
		"risks":     []string{"No LLM is configured, so risks were not assessed; review the measured facts."},
		"proposals": []string{"Configure an LLM provider and scan again for a grounded brief."},
	}
}
