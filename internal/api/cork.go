package api

import (
	"bufio"
	"net"
	"net/http"
	"sync"
	"time"
)

// corkLimit is how many bytes a corked connection holds before it writes
// them anyway.
const corkLimit = 64 << 10

// corkConn lets a stream coalesce a burst of WebSocket messages into one
// write. coder/websocket flushes every message to its connection, so without
// it each event costs each client a syscall, which is what bounded the
// fan-out (1,000 clients × 1,000 events/s). While corked, writes are kept;
// Uncork sends them in one write. Outside a burst it writes through, so
// pings, pongs and close frames go out at once.
type corkConn struct {
	net.Conn
	timeout time.Duration // bounds Uncork's write: a stalled client fails it

	mu     sync.Mutex
	corked bool
	buf    []byte
}

func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.corked {
		return c.Conn.Write(p)
	}
	c.buf = append(c.buf, p...)
	if len(c.buf) >= corkLimit {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// Cork holds writes until Uncork.
func (c *corkConn) Cork() {
	c.mu.Lock()
	c.corked = true
	c.mu.Unlock()
}

// Uncork writes what was held and writes through again.
func (c *corkConn) Uncork() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	return c.flushLocked()
}

func (c *corkConn) flushLocked() error {
	if len(c.buf) == 0 {
		return nil
	}
	_ = c.Conn.SetWriteDeadline(time.Now().Add(c.timeout))
	_, err := c.Conn.Write(c.buf)
	_ = c.Conn.SetWriteDeadline(time.Time{})
	if cap(c.buf) > corkLimit*2 {
		c.buf = nil // a one-off large burst should not pin its buffer
	} else {
		c.buf = c.buf[:0]
	}
	return err
}

// corkingWriter hands the WebSocket library a corkConn when it hijacks the
// connection.
type corkingWriter struct {
	http.ResponseWriter
	timeout time.Duration
	conn    *corkConn
}

func (w *corkingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if err := brw.Writer.Flush(); err != nil {
		conn.Close()
		return nil, nil, err
	}
	w.conn = &corkConn{Conn: conn, timeout: w.timeout}
	return w.conn, bufio.NewReadWriter(brw.Reader, bufio.NewWriterSize(w.conn, 4<<10)), nil
}

func (w *corkingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
