package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/events"
)

func (e *env) recorder() *events.Recorder {
	return &events.Recorder{Store: e.store, Broker: e.broker}
}

func (e *env) record(taskID string, typ domain.EventType, msg string, data string) domain.AgentLog {
	e.t.Helper()
	l := domain.AgentLog{TaskID: taskID, Type: typ, AgentName: "Coder", Message: msg}
	if data != "" {
		l.Data = json.RawMessage(data)
	}
	stored, err := e.recorder().Record(context.Background(), l)
	if err != nil {
		e.t.Fatal(err)
	}
	return stored
}

// finish marks the task completed the way the pipeline does: status, then
// the terminal task_state event.
func (e *env) finish(taskID string) domain.AgentLog {
	e.setStatus(taskID, domain.TaskCompleted)
	return e.record(taskID, domain.EventTaskState, "Task completed", `{"status":"completed","error":""}`)
}

func (e *env) wsURL(path string) string { return "ws" + strings.TrimPrefix(e.srv.URL, "http") + path }

// authed returns opts (nil: defaults) with the API token's Bearer header.
func authed(opts *websocket.DialOptions) *websocket.DialOptions {
	var o websocket.DialOptions
	if opts != nil {
		o = *opts
	}
	o.HTTPHeader = o.HTTPHeader.Clone()
	if o.HTTPHeader == nil {
		o.HTTPHeader = http.Header{}
	}
	o.HTTPHeader.Set("Authorization", bearer)
	return &o
}

func (e *env) dial(ctx context.Context, path string, opts *websocket.DialOptions) *websocket.Conn {
	e.t.Helper()
	c, resp, err := websocket.Dial(ctx, e.wsURL(path), authed(opts))
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		e.t.Fatalf("dial %s: %v (HTTP %d)", path, err, status)
	}
	c.SetReadLimit(1 << 20)
	return c
}

// readUntilClose reads events until the server closes; it returns the
// events and the close error.
func readUntilClose(ctx context.Context, c *websocket.Conn) ([]domain.AgentLog, error) {
	var got []domain.AgentLog
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			return got, err
		}
		var l domain.AgentLog
		if err := json.Unmarshal(b, &l); err != nil {
			return got, err
		}
		got = append(got, l)
	}
}

func checkSeqs(t *testing.T, who string, got []domain.AgentLog, from, to int64) {
	t.Helper()
	var stored []domain.AgentLog
	for _, l := range got {
		if l.Seq > 0 {
			stored = append(stored, l)
		}
	}
	if int64(len(stored)) != to-from+1 {
		t.Fatalf("%s: got %d stored events, want seq %d..%d", who, len(stored), from, to)
	}
	for i, l := range stored {
		if l.Seq != from+int64(i) {
			t.Fatalf("%s: event %d has seq %d, want %d (gap or duplicate)", who, i, l.Seq, from+int64(i))
		}
	}
}

// Events produced continuously while clients connect arrive exactly once and
// in order, for clients that connect before, during and after the burst.
func TestWebSocketSeamNoGapNoDuplicate(t *testing.T) {
	e := newEnv(t)
	task := e.createTask(e.createProject("p").ID, "x")
	const total = 400
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	produced := make(chan int64, total)
	go func() {
		rec := e.recorder()
		for i := 1; i < total; i++ {
			l, err := rec.Record(ctx, domain.AgentLog{TaskID: task.ID, Type: domain.EventLog, AgentName: "Coder", Message: fmt.Sprint("line ", i)})
			if err != nil {
				t.Error(err)
				return
			}
			if i%50 == 0 {
				rec.Delta(task.ID, "Coder", "typing…")
			}
			produced <- l.Seq
			time.Sleep(200 * time.Microsecond)
		}
		close(produced)
	}()

	type result struct {
		name  string
		after int64
		got   []domain.AgentLog
		err   error
	}
	var wg sync.WaitGroup
	results := make(chan result, 16)
	connect := func(name string, after int64) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := "/ws/" + task.ID
			if after > 0 {
				path += fmt.Sprint("?after=", after)
			}
			c := e.dial(ctx, path, nil)
			defer c.CloseNow()
			got, err := readUntilClose(ctx, c)
			results <- result{name, after, got, err}
		}()
	}
	connect("before", 0)
	n := 0
	for seq := range produced {
		n++
		switch n {
		case 40, 120, 200, 310:
			connect(fmt.Sprint("during@", seq), 0)
		case 250:
			connect(fmt.Sprint("during-after@", seq), seq-100)
		}
	}
	e.finish(task.ID) // seq == total
	connect("after", 0)
	wg.Wait()
	close(results)
	count := 0
	for r := range results {
		count++
		if websocket.CloseStatus(r.err) != websocket.StatusNormalClosure {
			t.Errorf("%s: closed with %v, want 1000 after the terminal event", r.name, r.err)
		}
		checkSeqs(t, r.name, r.got, r.after+1, total)
		last := r.got[len(r.got)-1]
		if last.Type != domain.EventTaskState || !strings.Contains(string(last.Data), "completed") {
			t.Errorf("%s: last event %+v, want the terminal task_state", r.name, last)
		}
		for _, l := range r.got {
			if l.ID == "" || l.TaskID != task.ID || l.AgentName != "Coder" || l.Timestamp.IsZero() || l.Type == "" {
				t.Fatalf("%s: incomplete event %+v", r.name, l)
			}
		}
	}
	if count != 7 {
		t.Fatalf("%d clients reported", count)
	}
}

func TestWebSocketClosesAfterTerminalStatus(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	task := e.createTask(e.createProject("p").ID, "x")
	e.record(task.ID, domain.EventLog, "hello", "")

	// Live: the terminal event is delivered, then a normal close.
	c := e.dial(ctx, "/ws/"+task.ID, nil)
	_, b, err := c.Read(ctx)
	if err != nil || !strings.Contains(string(b), "hello") {
		t.Fatalf("replay: %s %v", b, err)
	}
	e.record(task.ID, domain.EventNodeState, "deployer completed", `{"node":"deployer","state":"completed","iteration":1}`)
	e.setStatus(task.ID, domain.TaskFailed)
	e.record(task.ID, domain.EventTaskState, "Task failed", `{"status":"failed","error":"tests failed"}`)
	got, err := readUntilClose(ctx, c)
	if len(got) != 2 || got[1].Type != domain.EventTaskState {
		t.Fatalf("live tail = %+v", got)
	}
	if websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Fatalf("close = %v, want 1000", err)
	}

	// Already terminal: replay everything, then close normally at once.
	c2 := e.dial(ctx, "/ws/"+task.ID, nil)
	got, err = readUntilClose(ctx, c2)
	checkSeqs(t, "late client", got, 1, 3)
	if websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Fatalf("close = %v, want 1000", err)
	}

	// Terminal without a task_state event (cancelled before the executor
	// started): still closes after the replay.
	t2 := e.createTask(e.createProject("q").ID, "y")
	e.must(200, "POST", "/api/tasks/"+t2.ID+"/cancel", nil)
	c3 := e.dial(ctx, "/ws/"+t2.ID, nil)
	if _, err := readUntilClose(ctx, c3); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Fatalf("close = %v, want 1000", err)
	}
}

// The executor stores a terminal status before it records the task_state
// event that announces it; a client connecting in between must still get
// that event before the normal close.
func TestWebSocketWaitsForTheTerminalEvent(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	task := e.createTask(e.createProject("p").ID, "x")
	e.record(task.ID, domain.EventLog, "hello", "")
	e.setStatus(task.ID, domain.TaskCompleted)
	c := e.dial(ctx, "/ws/"+task.ID, nil)
	_, b, err := c.Read(ctx)
	if err != nil || !strings.Contains(string(b), "hello") {
		t.Fatalf("replay: %s %v", b, err)
	}
	e.record(task.ID, domain.EventTaskState, "Task completed", `{"status":"completed"}`)
	got, err := readUntilClose(ctx, c)
	if len(got) != 1 || got[0].Type != domain.EventTaskState || got[0].Seq != 2 {
		t.Fatalf("after the replay got %+v, want the terminal task_state", got)
	}
	if websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Fatalf("close = %v, want 1000", err)
	}
}

// A task over without its terminal event (the original backend's tasks)
// closes after the grace period, unless it was retried meanwhile: then the
// stream follows the new run to its end.
func TestWebSocketGraceEndsOrFollowsARetry(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	task := e.createTask(e.createProject("p").ID, "x")
	e.record(task.ID, domain.EventLog, "hello", "")
	e.setStatus(task.ID, domain.TaskFailed)

	quiet := e.dial(ctx, "/ws/"+task.ID, nil)
	got, err := readUntilClose(ctx, quiet)
	if len(got) != 1 || websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Fatalf("no terminal event: got %d events, close %v; want the replay, then 1000", len(got), err)
	}

	retried := e.dial(ctx, "/ws/"+task.ID, nil)
	if _, _, err := retried.Read(ctx); err != nil {
		t.Fatal(err)
	}
	e.setStatus(task.ID, domain.TaskRunning) // a retry within the grace period
	e.record(task.ID, domain.EventLog, "running again", "")
	time.Sleep(terminalGrace + 500*time.Millisecond) // past the grace period: still open
	e.setStatus(task.ID, domain.TaskCompleted)
	e.record(task.ID, domain.EventTaskState, "Task completed", `{"status":"completed"}`)
	got, err = readUntilClose(ctx, retried)
	if len(got) != 2 || got[1].Type != domain.EventTaskState || websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Fatalf("after the retry got %+v, close %v; want the new run's events, then 1000", got, err)
	}
}

func TestWebSocketUnknownTaskAndOrigins(t *testing.T) {
	e := newEnv(t, withConfig(func(c *Settings) { c.CORSOrigins = []string{"https://good.example"} }))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, e.wsURL("/ws/no-such-task"), authed(nil))
	if err == nil || resp == nil || resp.StatusCode != 404 {
		t.Fatalf("unknown task: %v %v", err, resp)
	}
	task := e.createTask(e.createProject("p").ID, "x")
	_, resp, err = websocket.Dial(ctx, e.wsURL("/ws/"+task.ID), authed(&websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://evil.example"}}}))
	if err == nil || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("refused origin: %v %v", err, resp)
	}
	for _, origin := range []string{"https://good.example", e.srv.URL, ""} {
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		c, _, err := websocket.Dial(ctx, e.wsURL("/ws/"+task.ID), authed(&websocket.DialOptions{HTTPHeader: h}))
		if err != nil {
			t.Fatalf("origin %q refused: %v", origin, err)
		}
		c.CloseNow()
	}
	_, resp, _ = websocket.Dial(ctx, e.wsURL("/ws/"+task.ID+"?after=abc"), authed(nil))
	if resp == nil || resp.StatusCode != 400 {
		t.Fatalf("bad after: %v", resp)
	}
}

func TestWebSocketPing(t *testing.T) {
	e := newEnv(t, withConfig(func(c *Settings) { c.WebSocketPingInterval = 40 * time.Millisecond }))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	task := e.createTask(e.createProject("p").ID, "x")
	var pings atomic.Int32
	c := e.dial(ctx, "/ws/"+task.ID, &websocket.DialOptions{OnPingReceived: func(context.Context, []byte) bool {
		pings.Add(1)
		return true
	}})
	defer c.CloseNow()
	go func() { _, _, _ = c.Read(ctx) }() // processes control frames
	time.Sleep(500 * time.Millisecond)
	if n := pings.Load(); n < 4 {
		t.Fatalf("%d pings in 500ms at a 40ms interval", n)
	}
}

// One stalled client is disconnected; another on the same task keeps
// receiving every event in order, and the producer never blocks.
func TestWebSocketSlowClientDisconnected(t *testing.T) {
	e := newEnv(t, withServer(func(s *server) {
		s.subBuffer = 128
		s.writeTimeout = time.Second
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	task := e.createTask(e.createProject("p").ID, "x")

	stalled := e.dial(ctx, "/ws/"+task.ID, nil) // never reads until the end
	defer stalled.CloseNow()
	healthy := e.dial(ctx, "/ws/"+task.ID, nil)
	defer healthy.CloseNow()
	waitFor(t, func() bool { return e.broker.Subscribers(task.ID) == 2 })

	const total = 1500
	pad := strings.Repeat("x", 8<<10) // 8 KiB per event: fills socket buffers fast
	done := make(chan []domain.AgentLog)
	go func() {
		got, err := readN(ctx, healthy, total)
		if err != nil {
			t.Errorf("healthy client: %v", err)
		}
		done <- got
	}()
	start := time.Now()
	var slowest time.Duration
	for i := 1; i <= total; i++ {
		t0 := time.Now()
		e.record(task.ID, domain.EventLog, pad, "")
		slowest = max(slowest, time.Since(t0))
		time.Sleep(300 * time.Microsecond) // ~2,000 events/s
	}
	produce := time.Since(start)
	got := <-done
	checkSeqs(t, "healthy", got, 1, total)
	// The stalled client is gone from the broker: evicted when its buffer
	// filled, or cut by the write timeout first (slow machines).
	waitFor(t, func() bool { return e.broker.Subscribers(task.ID) == 1 })
	if _, evicted := e.broker.Stats(); evicted > 1 {
		t.Fatalf("evicted subscribers = %d: the healthy client was dropped too", evicted)
	}
	if slowest > 2*time.Second {
		t.Fatalf("a Record call took %v: the stalled client slowed the producer", slowest)
	}
	t.Logf("produced %d events in %v (slowest Record %v)", total, produce, slowest)

	// The stalled client finds its stream cut short and closed.
	stalledGot, err := readUntilClose(ctx, stalled)
	if len(stalledGot) >= total {
		t.Fatalf("stalled client received everything (%d)", len(stalledGot))
	}
	if err == nil {
		t.Fatal("stalled client not closed")
	}
	if cs := websocket.CloseStatus(err); cs != -1 && cs != statusTooSlow {
		t.Fatalf("stalled client closed with %v, want 4000 too slow (or a cut connection)", err)
	}
	t.Logf("stalled client got %d events, then %v", len(stalledGot), err)
}

func readN(ctx context.Context, c *websocket.Conn, n int) ([]domain.AgentLog, error) {
	var got []domain.AgentLog
	for len(got) < n {
		_, b, err := c.Read(ctx)
		if err != nil {
			return got, err
		}
		var l domain.AgentLog
		if err := json.Unmarshal(b, &l); err != nil {
			return got, err
		}
		if l.Seq > 0 {
			got = append(got, l)
		}
	}
	return got, nil
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSSEReplayWithLastEventID(t *testing.T) {
	e := newEnv(t, withConfig(func(c *Settings) { c.WebSocketPingInterval = 50 * time.Millisecond }))
	task := e.createTask(e.createProject("p").ID, "x")
	for i := range 5 {
		e.record(task.ID, domain.EventLog, fmt.Sprint("line ", i+1), "")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/api/tasks/"+task.ID+"/events", nil)
	req.Header.Set("Last-Event-ID", "2")
	req.Header.Set("Authorization", bearer)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("SSE response %d %v", resp.StatusCode, resp.Header)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var ids []string
	var heartbeat, ended bool
	finished := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "id: "):
			ids = append(ids, strings.TrimPrefix(line, "id: "))
		case line == ": ping":
			heartbeat = true
			if !finished {
				finished = true
				e.record(task.ID, domain.EventLog, "live", "")
				e.finish(task.ID)
			}
		case line == "event: end":
			ended = true
		case strings.HasPrefix(line, "data: {"):
			var l domain.AgentLog
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &l); err != nil {
				t.Fatalf("data line: %v", err)
			}
		}
	}
	if strings.Join(ids, ",") != "3,4,5,6,7" || !heartbeat || !ended {
		t.Fatalf("ids %v heartbeat %v end %v", ids, heartbeat, ended)
	}

	// ?after works too; a finished task with nothing new answers 204 so
	// EventSource stops reconnecting.
	r := e.must(200, "GET", "/api/tasks/"+task.ID+"/events?after=6", nil)
	if !strings.Contains(string(r.body), "id: 7\n") || strings.Contains(string(r.body), "id: 6\n") {
		t.Fatalf("after=6: %s", r.body)
	}
	e.must(204, "GET", "/api/tasks/"+task.ID+"/events", nil, "Last-Event-ID", "7")
	e.must(400, "GET", "/api/tasks/"+task.ID+"/events?after=x", nil).problem(t)
	if !errors.Is(ctx.Err(), nil) {
		t.Fatal(ctx.Err())
	}
}
