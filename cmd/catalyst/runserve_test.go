package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

type event struct {
	Seq       int64           `json:"seq"`
	Type      string          `json:"type"`
	AgentName string          `json:"agent_name"`
	Message   string          `json:"message"`
	Data      json.RawMessage `json:"data"`
}

// nodeStarts counts the node_state "running" events of each node.
func nodeStarts(logs []event) map[string]int {
	n := map[string]int{}
	for _, l := range logs {
		var d struct{ Node, State string }
		if l.Type == "node_state" && json.Unmarshal(l.Data, &d) == nil && d.State == "running" {
			n[d.Node]++
		}
	}
	return n
}

// `catalyst run` beside a running `catalyst serve` on the same data
// directory runs only its own task (it used to resume the server's running
// task too: two runners, double model spend, two writers in a workspace),
// and the server serves and streams the CLI's task.
func TestRunBesideServeRunsOnlyItsOwnTask(t *testing.T) {
	data := t.TempDir()
	slow := "CATALYST_OFFLINE_LATENCY=300ms"
	s := startServer(t, data, slow)
	served := s.createTask("Build a todo app")
	s.waitTask(served.ID, 60*time.Second, func(t task) bool { return t.GraphState["planner"] == "running" })

	cli := exec.Command(binary, "run", "Build a calculator")
	cli.Dir = t.TempDir()
	cli.Env = isolatedEnv(data, append(storeEnv(t, data), slow)...)
	stdout, err := cli.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	out := newSyncBuffer()
	cli.Stderr = out
	if err := cli.Start(); err != nil {
		t.Fatal(err)
	}
	idCh := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`^Task ([0-9a-f-]{36})`)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			out.Write([]byte(sc.Text() + "\n"))
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				idCh <- m[1]
			}
		}
	}()
	var cliID string
	select {
	case cliID = <-idCh:
	case <-time.After(60 * time.Second):
		t.Fatalf("catalyst run printed no task id:\n%s", out)
	}

	// The server streams the CLI's task live (its events come from another
	// process: the server follows them through the store).
	req, _ := http.NewRequest("GET", s.URL+"/api/tasks/"+cliID+"/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var streamed []event
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	deadline := time.AfterFunc(120*time.Second, func() { resp.Body.Close() })
	defer deadline.Stop()
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "data: ") {
			continue
		}
		var e event
		if json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &e) != nil || e.Seq == 0 {
			continue
		}
		streamed = append(streamed, e)
		if e.Type == "task_state" && strings.Contains(string(e.Data), `"completed"`) {
			break
		}
	}
	if err := cli.Wait(); err != nil {
		t.Fatalf("catalyst run: %v\n%s", err, out)
	}
	for i, e := range streamed {
		if e.Seq != int64(i+1) {
			t.Fatalf("the server's stream of the CLI's task: event %d has seq %d (gap or duplicate)", i, e.Seq)
		}
	}
	if len(streamed) < 10 || streamed[len(streamed)-1].Type != "task_state" {
		t.Fatalf("the server streamed %d events of the CLI's task, not to its end", len(streamed))
	}

	final := s.waitTask(served.ID, 120*time.Second, terminal)
	if final.Status != "completed" {
		t.Fatalf("the server's task: %s %s", final.Status, final.Error)
	}
	for id, who := range map[string]string{served.ID: "server", cliID: "CLI"} {
		var logs []event
		s.do("GET", "/api/logs/"+id+"?limit=1000", nil, &logs)
		for node, n := range nodeStarts(logs) {
			if n != 1 {
				t.Errorf("the %s's task: %s started %d times", who, node, n)
			}
		}
		if nodeStarts(logs)["planner"] != 1 {
			t.Errorf("the %s's task: no planner start: %v", who, nodeStarts(logs))
		}
	}
	var files []struct{ Path string }
	if code := s.do("GET", "/api/tasks/"+cliID+"/files", nil, &files); code != 200 || len(files) == 0 {
		t.Fatalf("the server does not serve the CLI task's files: %d %v", code, files)
	}
	s.stop()
}
