package api

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
)

// rawWS is a minimal WebSocket client for the load test: it reads frames
// straight off a buffered TCP connection. A thousand coder/websocket clients
// took two thirds of the CPU the server shares with them (a context and
// timers per Read), so the figures measured the clients, not the server.
type rawWS struct {
	conn net.Conn
	br   *bufio.Reader
	buf  []byte
}

// closeFrame is the close a server sent.
type closeFrame struct {
	code   int
	reason string
}

func (c closeFrame) Error() string { return fmt.Sprintf("closed %d %q", c.code, c.reason) }

// dialRaw opens a WebSocket to ws://hostport/path.
func dialRaw(ctx context.Context, hostport, path string) (*rawWS, error) {
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", hostport)
	if err != nil {
		return nil, err
	}
	var k [16]byte
	rand.Read(k[:])
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Authorization: Bearer %s\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", path, hostport, testToken, base64.StdEncoding.EncodeToString(k[:])); err != nil {
		conn.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(conn, 16<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		conn.Close()
		return nil, fmt.Errorf("handshake: %s", resp.Status)
	}
	return &rawWS{conn: conn, br: br}, nil
}

func (c *rawWS) Close() error { return c.conn.Close() }

// next returns the payload of the next text message, valid until the next
// call. Pings are answered; a close frame is returned as a closeFrame error.
func (c *rawWS) next() ([]byte, error) {
	for {
		var h [2]byte
		if _, err := io.ReadFull(c.br, h[:]); err != nil {
			return nil, err
		}
		fin, op := h[0]&0x80 != 0, h[0]&0x0f
		if h[1]&0x80 != 0 {
			return nil, errors.New("server frames must not be masked")
		}
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			var x [2]byte
			if _, err := io.ReadFull(c.br, x[:]); err != nil {
				return nil, err
			}
			n = uint64(binary.BigEndian.Uint16(x[:]))
		case 127:
			var x [8]byte
			if _, err := io.ReadFull(c.br, x[:]); err != nil {
				return nil, err
			}
			n = binary.BigEndian.Uint64(x[:])
		}
		if n > 16<<20 {
			return nil, fmt.Errorf("frame of %d bytes", n)
		}
		if uint64(cap(c.buf)) < n {
			c.buf = make([]byte, n)
		}
		p := c.buf[:n]
		if _, err := io.ReadFull(c.br, p); err != nil {
			return nil, err
		}
		switch op {
		case 0x1:
			if !fin {
				return nil, errors.New("fragmented message")
			}
			return p, nil
		case 0x8:
			if len(p) < 2 {
				return nil, closeFrame{code: 1005}
			}
			return nil, closeFrame{code: int(binary.BigEndian.Uint16(p)), reason: string(p[2:])}
		case 0x9:
			// Pong with the ping's payload, masked with a zero key (clients
			// must mask; any key is valid).
			f := append([]byte{0x8a, 0x80 | byte(len(p)), 0, 0, 0, 0}, p...)
			if _, err := c.conn.Write(f); err != nil {
				return nil, err
			}
		}
	}
}
