package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/natstest"
	"github.com/catalyst/catalyst/internal/pipeline"
	"github.com/catalyst/catalyst/internal/store/mongo/mongotest"
)

// The scale-out topology with the real binary: NATS with JetStream and the
// MongoDB-wire server in this test process, one API node that runs no tasks
// (serve --workers 0) and two `catalyst worker` processes, each with its own
// data directory. They share nothing but MongoDB and NATS.

type cluster struct {
	t       *testing.T
	nats    *natstest.Server
	env     []string
	api     *server
	workers []*server
	js      jetstream.JetStream
}

// proc starts the binary with args and waits until its stdout matches
// ready; its stderr and stdout are kept for failure messages.
func proc(t *testing.T, args []string, env []string, ready *regexp.Regexp) (*server, []string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = env
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, cmd: cmd, out: newSyncBuffer(), exited: make(chan error, 1)}
	cmd.Stderr = s.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	matched := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			s.out.Write([]byte(sc.Text() + "\n"))
			if m := ready.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case matched <- m:
				default:
				}
			}
		}
	}()
	go func() { s.exited <- cmd.Wait() }()
	var m []string
	select {
	case m = <-matched:
	case err := <-s.exited:
		t.Fatalf("%v exited at start: %v\n%s", args, err, s.out)
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("%v did not start:\n%s", args, s.out)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-s.exited
		}
	})
	return s, m
}

func startCluster(t *testing.T, latency string) *cluster {
	t.Helper()
	c := &cluster{t: t, nats: natstest.Start(t)}
	c.env = []string{
		"MONGO_URL=" + mongotest.Start(t), "DB_NAME=" + mongotest.DBName(t),
		"NATS_URL=" + c.nats.URL(),
		"CATALYST_LEASE_TTL=2s",
		"CATALYST_OFFLINE_LATENCY=" + latency,
		"MAX_CONCURRENT_TASKS=2",
	}
	c.api, _ = proc(t, []string{"serve", "--workers", "0"}, isolatedEnv(t.TempDir(), c.env...), regexp.MustCompile(`listening on (http://\S+)`))
	m := regexp.MustCompile(`listening on (http://\S+)`).FindStringSubmatch(c.api.out.String())
	c.api.URL = m[1]
	c.api.Token = printedToken(t, c.api)
	c.startWorker()
	c.startWorker()
	return c
}

var workerReady = regexp.MustCompile(`worker (\S+): up to (\d+) tasks`)

func (c *cluster) startWorker() *server {
	c.t.Helper()
	w, _ := proc(c.t, []string{"worker"}, isolatedEnv(c.t.TempDir(), c.env...), workerReady)
	c.workers = append(c.workers, w)
	return w
}

// runner returns the worker process holding the task's lease.
func (c *cluster) runner(id string) *server {
	c.t.Helper()
	var tk struct {
		LeaseOwner string `json:"lease_owner"`
	}
	c.api.do("GET", "/api/tasks/"+id, nil, &tk)
	parts := strings.Split(tk.LeaseOwner, ":")
	if len(parts) < 3 {
		c.t.Fatalf("task %s has no lease owner: %q", id, tk.LeaseOwner)
	}
	pid, _ := strconv.Atoi(parts[len(parts)-2])
	for _, w := range c.workers {
		if w.cmd.Process.Pid == pid && w.cmd.ProcessState == nil {
			return w
		}
	}
	c.t.Fatalf("task %s is leased to %q, none of the live workers", id, tk.LeaseOwner)
	return nil
}

// pendingAcks is the number of task messages delivered to workers and not
// yet acknowledged.
func (c *cluster) pendingAcks() int {
	c.t.Helper()
	if c.js == nil {
		js, err := jetstream.New(c.nats.Connect(c.t))
		if err != nil {
			c.t.Fatal(err)
		}
		c.js = js
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cons, err := c.js.Consumer(ctx, pipeline.TaskStream, pipeline.TaskConsumer)
	if err != nil {
		c.t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	return info.NumAckPending + int(info.NumPending)
}

// drained waits until no task message is queued or held: every task that
// ended was acknowledged.
func (c *cluster) drained(d time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for n := c.pendingAcks(); n != 0; n = c.pendingAcks() {
		if time.Now().After(deadline) {
			c.t.Fatalf("%d task messages left in the queue after every task ended", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type wsEvent struct {
	Seq  int64           `json:"seq"`
	ID   string          `json:"id"`
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

// follow collects a task's events from the API node's WebSocket until the
// task's terminal task_state (or ctx ends).
func follow(ctx context.Context, t *testing.T, base, token, id string) <-chan []wsEvent {
	out := make(chan []wsEvent, 1)
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/ws/"+id,
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
	if err != nil {
		t.Fatalf("websocket: %v", err)
	}
	conn.SetReadLimit(1 << 22)
	go func() {
		defer conn.CloseNow()
		var got []wsEvent
		defer func() { out <- got }()
		for {
			_, b, err := conn.Read(ctx)
			if err != nil {
				return
			}
			var e wsEvent
			if json.Unmarshal(b, &e) != nil || e.Seq == 0 {
				continue // token deltas and control frames
			}
			got = append(got, e)
			if e.Type == "task_state" {
				var d struct{ Status string }
				json.Unmarshal(e.Data, &d)
				if d.Status == "completed" || d.Status == "failed" || d.Status == "cancelled" {
					return
				}
			}
		}
	}()
	return out
}

type artifact struct {
	Node      string  `json:"node"`
	Iteration int     `json:"iteration"`
	Cost      float64 `json:"cost"`
}

func TestScaleOutAPINodeAndTwoWorkers(t *testing.T) {
	c := startCluster(t, "100ms")
	api := c.api

	var health map[string]any
	if code := api.do("GET", "/api/health", nil, &health); code != 200 || health["nats"] != "ok" || health["store"] != "ok" {
		t.Fatalf("health %d %v", code, health)
	}

	t.Run("several tasks complete, NATS restarted mid-run", func(t *testing.T) {
		began := time.Now()
		var ids []string
		for i := range 3 {
			ids = append(ids, api.createTask(fmt.Sprintf("Build a todo app %d", i)).ID)
		}
		api.waitTask(ids[0], 60*time.Second, func(t task) bool { return t.GraphState["architect"] != "pending" || terminal(t) })
		c.nats.Shutdown()
		// A submission while NATS is away waits for it to come back.
		late := make(chan task, 1)
		go func() { late <- api.createTask("Build a clock") }()
		time.Sleep(1500 * time.Millisecond)
		c.nats.Restart()
		ids = append(ids, (<-late).ID)
		for _, id := range ids {
			tk := api.waitTask(id, 120*time.Second, terminal)
			if tk.Status != "completed" {
				t.Fatalf("task %s %s: %s\nAPI:\n%s\nworker 1:\n%s\nworker 2:\n%s", id, tk.Status, tk.Error, api.out, c.workers[0].out, c.workers[1].out)
			}
		}
		var health map[string]any
		if code := api.do("GET", "/api/health", nil, &health); code != 200 || health["nats"] != "ok" {
			t.Fatalf("health after the restart: %d %v", code, health)
		}
		c.drained(10 * time.Second)
		t.Logf("4 tasks in %v", time.Since(began).Round(time.Millisecond))
	})

	t.Run("kill -9 of the worker running a task after its coder", func(t *testing.T) {
		tk := api.createTask("Build a calculator")
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
		defer cancel()
		events := follow(ctx, t, api.URL, api.Token, tk.ID)
		api.waitTask(tk.ID, 90*time.Second, func(t task) bool { return t.GraphState["coder"] == "completed" || terminal(t) })
		victim := c.runner(tk.ID)
		if err := victim.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		<-victim.exited
		killed := time.Now()
		other := c.workers[0]
		if other == victim {
			other = c.workers[1]
		}
		final := api.waitTask(tk.ID, 60*time.Second, terminal)
		t.Logf("finished %v after the kill", time.Since(killed).Round(time.Millisecond))
		if final.Status != "completed" {
			t.Fatalf("after the kill: %s %s\n%s", final.Status, final.Error, other.out)
		}
		var arts []artifact
		api.do("GET", "/api/tasks/"+tk.ID+"/artifacts", nil, &arts)
		runs := map[string]int{}
		sum := 0.0
		for _, a := range arts {
			runs[a.Node]++
			sum += a.Cost
		}
		for _, n := range []string{"planner", "architect", "coder", "tester", "reviewer", "deployer"} {
			if runs[n] != 1 {
				t.Errorf("node %s has %d artifacts, want 1 (all: %v)", n, runs[n], runs)
			}
		}
		if math.Abs(final.Cost-sum) > 1e-9 {
			t.Errorf("task cost %v, its artifacts cost %v: a node was charged twice", final.Cost, sum)
		}
		got := <-events
		var stored []wsEvent
		api.do("GET", "/api/logs/"+tk.ID+"?limit=1000", nil, &stored)
		if len(got) != len(stored) {
			t.Fatalf("WebSocket got %d events, the store has %d", len(got), len(stored))
		}
		for i, e := range got {
			if e.Seq != int64(i+1) || e.ID != stored[i].ID {
				t.Fatalf("WebSocket event %d: seq %d id %s, want seq %d id %s (gap, duplicate or disorder)", i, e.Seq, e.ID, i+1, stored[i].ID)
			}
		}
		c.startWorker() // back to two
	})

	t.Run("cancel through the API stops the run on its worker", func(t *testing.T) {
		tk := api.createTask("Build a stopwatch")
		api.waitTask(tk.ID, 60*time.Second, func(t task) bool { return t.GraphState["architect"] == "running" || terminal(t) })
		if c.pendingAcks() != 1 {
			t.Fatalf("%d task messages held, want the running task's", c.pendingAcks())
		}
		var cancelled struct {
			FinishedAt time.Time `json:"finished_at"`
		}
		if code := api.do("POST", "/api/tasks/"+tk.ID+"/cancel", nil, &cancelled); code != 200 {
			t.Fatalf("cancel: %d", code)
		}
		start := time.Now()
		// The worker acknowledges the task's message when its run ended.
		for c.pendingAcks() != 0 {
			if time.Since(start) > 10*time.Second {
				t.Fatal("the worker still holds the cancelled task")
			}
			time.Sleep(50 * time.Millisecond)
		}
		stopped := time.Since(start)
		// A run that goes on records its agents' progress; the stopped one
		// recorded nothing later than a second after the cancel. (The
		// cancel's own events are the API node's, recorded by System.)
		time.Sleep(time.Second)
		var logs []struct {
			Seq       int64     `json:"seq"`
			Agent     string    `json:"agent_name"`
			Message   string    `json:"message"`
			Timestamp time.Time `json:"timestamp"`
		}
		api.do("GET", "/api/logs/"+tk.ID+"?limit=1000", nil, &logs)
		var timeline strings.Builder
		late := false
		for _, l := range logs {
			fmt.Fprintf(&timeline, "  %3d %+8v %s\n", l.Seq, l.Timestamp.Sub(cancelled.FinishedAt).Round(time.Millisecond), l.Message)
			late = late || (l.Agent != domain.System && l.Timestamp.After(cancelled.FinishedAt.Add(time.Second)))
		}
		if late {
			t.Errorf("events recorded more than a second after the cancel (times relative to it):\n%s", timeline.String())
		}
		t.Logf("the worker acknowledged the cancelled task %v after the cancel answered", stopped.Round(time.Millisecond))
	})
}

func TestWorkerRefusesToStartWithoutNATSAndMongo(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{nil, "set NATS_URL and MONGO_URL"},
		{[]string{"MONGO_URL=mongodb://127.0.0.1:1"}, "set NATS_URL"},
		// The configuration itself refuses NATS on the embedded store.
		{[]string{"NATS_URL=nats://secret-token@127.0.0.1:1"}, "MONGO_URL"},
	} {
		cmd := exec.Command(binary, "worker")
		cmd.Dir = t.TempDir()
		cmd.Env = isolatedEnv(t.TempDir(), tc.env...)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("worker with %v: %v, want a refusal saying %q:\n%s", tc.env, err, tc.want, out)
		}
		if strings.Contains(string(out), "secret-token") {
			t.Errorf("the NATS token was printed:\n%s", out)
		}
	}
	cmd := exec.Command(binary, "serve", "--workers", "0")
	cmd.Dir = t.TempDir()
	cmd.Env = isolatedEnv(t.TempDir())
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "--workers 0 needs NATS_URL") {
		t.Errorf("serve --workers 0 without NATS: %v\n%s", err, out)
	}
}

func TestHealthReportsNATSDown(t *testing.T) {
	srv := natstest.Start(t)
	env := []string{"MONGO_URL=" + mongotest.Start(t), "DB_NAME=" + mongotest.DBName(t), "NATS_URL=" + srv.URL(), "CATALYST_LEASE_TTL=2s"}
	api, _ := proc(t, []string{"serve", "--workers", "0"}, isolatedEnv(t.TempDir(), env...), regexp.MustCompile(`listening on (http://\S+)`))
	api.URL = regexp.MustCompile(`listening on (http://\S+)`).FindStringSubmatch(api.out.String())[1]
	api.Token = printedToken(t, api)
	srv.Shutdown()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(api.URL + "/api/health")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("health still %d with NATS down", resp.StatusCode)
		}
		time.Sleep(100 * time.Millisecond)
	}
	srv.Restart()
	deadline = time.Now().Add(15 * time.Second)
	for {
		var h map[string]any
		if code := api.do("GET", "/api/health", nil, &h); code == 200 && h["nats"] == "ok" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("health did not recover after NATS came back")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
