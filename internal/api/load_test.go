package api

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/events"
)

// The load figures of issue 5 item 4 (the normal run does a small version):
//
//	go test ./internal/api -run TestLoadWebSocketFanout -v -load
//	    [-load.subs 1000 -load.rate 1000 -load.dur 10s]
var (
	loadRun  = flag.Bool("load", false, "run the WebSocket fan-out load test at full size")
	loadSubs = flag.Int("load.subs", 1000, "WebSocket subscribers on one task")
	loadRate = flag.Int("load.rate", 1000, "events per second produced through the Recorder")
	loadDur  = flag.Duration("load.dur", 10*time.Second, "how long events are produced")
)

func TestLoadWebSocketFanout(t *testing.T) {
	subs, rate, dur := *loadSubs, *loadRate, *loadDur
	if !*loadRun {
		// Without -load, a small run keeps the harness (and fan-out to many
		// subscribers) checked in every test run.
		subs, rate, dur = 20, 500, time.Second
	}
	e := newEnv(t)
	task := e.createTask(e.createProject("load").ID, "x")
	// Serve with small kernel send buffers: on loopback a socket absorbs
	// megabytes, so a client that stops reading would never block the
	// server's writes within the run, as it does across a real network.
	small := httptest.NewUnstartedServer(e.api.handler())
	small.Listener = sendBufferListener{Listener: small.Listener, size: 16 << 10}
	small.Start()
	defer small.Close()
	e.srv = small
	ctx, cancel := context.WithTimeout(context.Background(), dur+5*time.Minute)
	defer cancel()

	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)

	// One stalled client (never reads, with a tiny socket receive buffer so
	// that the server's writes to it block soon) and subs-1 healthy ones.
	stalled := e.dial(ctx, "/ws/"+task.ID, &websocket.DialOptions{HTTPClient: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetReadBuffer(4096)
			}
			return c, err
		},
	}}})
	defer stalled.CloseNow()
	host := strings.TrimPrefix(e.srv.URL, "http://")
	healthy := make([]*rawWS, subs-1)
	for i := range healthy {
		c, err := dialRaw(ctx, host, "/ws/"+task.ID)
		if err != nil {
			t.Fatal(err)
		}
		healthy[i] = c
		defer c.Close()
	}
	waitFor(t, func() bool { return e.broker.Subscribers(task.ID) == subs })

	total := rate * int(dur/time.Second)
	type clientResult struct {
		lat        []time.Duration
		received   int
		reconnects int
		err        error
	}
	results := make([]clientResult, len(healthy))
	var wg sync.WaitGroup
	for i, c := range healthy {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &results[i]
			r.lat = make([]time.Duration, 0, total)
			var last int64
			for r.received < total {
				b, err := c.next()
				var cf closeFrame
				if errors.As(err, &cf) && cf.code == int(statusTooSlow) && r.reconnects < 20 {
					// As the dashboard does: resume after the last seq seen.
					r.reconnects++
					c.Close()
					if c, err = dialRaw(ctx, host, fmt.Sprintf("/ws/%s?after=%d", task.ID, last)); err != nil {
						r.err = err
						return
					}
					defer c.Close()
					continue
				}
				if err != nil {
					r.err = err
					return
				}
				now := time.Now()
				// The clients share the server's two cores: read only the
				// seq and timestamp, so their JSON decoding does not count
				// against the server (json.Unmarshal here was 15% of all CPU).
				// The event's full shape is checked by the WS tests.
				seq, ts, err := seqAndTimestampOf(b)
				if err != nil {
					r.err = err
					return
				}
				if seq != last+1 {
					r.err = fmt.Errorf("seq %d after %d", seq, last)
					return
				}
				last = seq
				r.lat = append(r.lat, now.Sub(ts))
				r.received++
			}
		}()
	}

	// Produce at the target rate through the Recorder (store, then publish).
	rec := e.recorder()
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	var peak runtime.MemStats
	var slowestRecord time.Duration
	for i := range total {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		t0 := time.Now()
		if _, err := rec.Record(ctx, domain.AgentLog{TaskID: task.ID, Type: domain.EventLog, AgentName: "Coder",
			Message: fmt.Sprintf("event %d: a line of agent output of a typical length, about a hundred bytes long....", i)}); err != nil {
			t.Fatal(err)
		}
		slowestRecord = max(slowestRecord, time.Since(t0))
		if i%rate == 0 {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.HeapInuse {
				peak = m
			}
		}
	}
	produced := time.Since(start)
	wg.Wait()
	goroutines := runtime.NumGoroutine()

	var all []time.Duration
	complete, reconnects, reconnected := 0, 0, 0
	var firstErr error
	for _, r := range results {
		all = append(all, r.lat...)
		reconnects += r.reconnects
		if r.reconnects > 0 {
			reconnected++
		}
		if r.received == total {
			complete++
		} else if firstErr == nil {
			firstErr = r.err
		}
	}
	slices.Sort(all)
	pct := func(p float64) time.Duration {
		if len(all) == 0 {
			return 0
		}
		return all[min(len(all)-1, int(float64(len(all))*p))]
	}
	_, evicted := e.broker.Stats()
	// Gone either way: evicted by the broker (buffer full) or disconnected
	// by the server's write timeout, whichever came first.
	stalledGone := e.broker.Subscribers(task.ID) < subs || evicted >= 1

	fmt.Printf("\nWebSocket fan-out: %d subscribers on one task, %d events at %d/s through the Recorder (SQLite store)\n",
		subs, total, rate)
	fmt.Printf("  produced in %v (target %v); slowest Record call %v\n", produced.Round(time.Millisecond), dur, slowestRecord.Round(time.Microsecond))
	fmt.Printf("  deliveries: %d (%d healthy clients got all %d events in order of seq; first failure: %v)\n", len(all), complete, total, firstErr)
	fmt.Printf("  healthy clients disconnected as too slow (4000) that resumed with ?after: %d, %d reconnects in all\n", reconnected, reconnects)
	fmt.Printf("  delivery latency (Record -> client read): p50 %v  p99 %v  max %v\n",
		pct(0.50).Round(time.Microsecond), pct(0.99).Round(time.Microsecond), pct(1).Round(time.Microsecond))
	fmt.Printf("  memory (server and clients share this process): heap in use %.1f MiB at peak (%.1f MiB before connecting), sys %.1f MiB; goroutines %d\n",
		float64(peak.HeapInuse)/(1<<20), float64(base.HeapInuse)/(1<<20), float64(peak.Sys)/(1<<20), goroutines)
	fmt.Printf("  stalled client: disconnected %v (evicted for a full buffer: %d; subscribers left %d of %d)\n",
		stalledGone, evicted, e.broker.Subscribers(task.ID), subs)
	if complete != len(healthy) {
		t.Errorf("%d of %d healthy clients missed events", len(healthy)-complete, len(healthy))
	}
	// The stall is detected once the kernel buffers (tens of KB) and the
	// broker buffer (DefaultBuffer events) are full: a few thousand events.
	if total >= 3*events.DefaultBuffer && !stalledGone {
		t.Errorf("the stalled client was not disconnected after %d events", total)
	}
}

// sendBufferListener sets the kernel send buffer of every accepted connection.
type sendBufferListener struct {
	net.Listener
	size int
}

func (l sendBufferListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(l.size)
	}
	return c, err
}

var (
	seqKey       = []byte(`"seq":`)
	timestampKey = []byte(`"timestamp":"`)
)

// seqAndTimestampOf extracts an event's seq and timestamp without decoding
// the rest.
func seqAndTimestampOf(b []byte) (int64, time.Time, error) {
	i := bytes.Index(b, seqKey)
	if i < 0 {
		return 0, time.Time{}, fmt.Errorf("no seq in %s", b)
	}
	var seq int64
	for _, c := range b[i+len(seqKey):] {
		if c < '0' || c > '9' {
			break
		}
		seq = seq*10 + int64(c-'0')
	}
	i = bytes.Index(b, timestampKey)
	if i < 0 {
		return 0, time.Time{}, fmt.Errorf("no timestamp in %s", b)
	}
	rest := b[i+len(timestampKey):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return 0, time.Time{}, fmt.Errorf("unterminated timestamp in %s", b)
	}
	ts, err := time.Parse(time.RFC3339Nano, string(rest[:j]))
	return seq, ts, err
}
