package api

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"
)

// countingConn records each write that reaches the "network".
type countingConn struct {
	net.Conn
	writes [][]byte
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes = append(c.writes, append([]byte(nil), p...))
	return len(p), nil
}

func (c *countingConn) SetWriteDeadline(time.Time) error { return nil }

func TestCorkCoalescesABurstIntoOneWrite(t *testing.T) {
	under := &countingConn{}
	c := &corkConn{Conn: under, timeout: time.Second}

	if _, err := c.Write([]byte("ping")); err != nil || len(under.writes) != 1 {
		t.Fatalf("uncorked write must go out at once: %d writes, %v", len(under.writes), err)
	}
	c.Cork()
	var want bytes.Buffer
	for i := range 100 {
		msg := []byte(strings.Repeat(string(rune('a'+i%26)), 50))
		want.Write(msg)
		if n, err := c.Write(msg); n != len(msg) || err != nil {
			t.Fatal(n, err)
		}
	}
	if len(under.writes) != 1 {
		t.Fatalf("corked writes reached the connection: %d writes", len(under.writes))
	}
	if err := c.Uncork(); err != nil {
		t.Fatal(err)
	}
	if len(under.writes) != 2 || !bytes.Equal(under.writes[1], want.Bytes()) {
		t.Fatalf("uncork: %d writes, want the burst as one write in order", len(under.writes))
	}
	if err := c.Uncork(); err != nil || len(under.writes) != 2 {
		t.Fatalf("an empty uncork wrote: %d writes", len(under.writes))
	}

	// A burst larger than the limit goes out in pieces, none over it by
	// more than one message, and nothing is lost.
	c.Cork()
	big := bytes.Repeat([]byte("x"), 10<<10)
	for range 20 {
		_, _ = c.Write(big)
	}
	_ = c.Uncork()
	total := 0
	for _, w := range under.writes[2:] {
		if len(w) > corkLimit+len(big) {
			t.Fatalf("a held write of %d bytes exceeds the limit", len(w))
		}
		total += len(w)
	}
	if total != 20*len(big) || len(under.writes[2:]) < 3 {
		t.Fatalf("%d bytes in %d writes, want %d bytes in several", total, len(under.writes[2:]), 20*len(big))
	}
}
