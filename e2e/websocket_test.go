//go:build linux && cgo

package e2e

import (
	"bufio"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// wsConn is the least of a WebSocket client (RFC 6455) a test needs to
// talk to a Jupyter kernel through amlsim's proxy: text messages out,
// text messages in, no extensions.
type wsConn struct {
	conn *tls.Conn
	r    *bufio.Reader
}

// dialWebSocket opens a WebSocket at an https URL, sending header (the
// token, an Origin) with the upgrade request.
func dialWebSocket(rawURL string, cfg *tls.Config, header http.Header) (*wsConn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	conn, err := tls.Dial("tcp", u.Host, cfg)
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(2 * time.Minute))
	nonce := make([]byte, 16)
	rand.Read(nonce)
	req, _ := http.NewRequest("GET", rawURL, nil)
	req.Header = header.Clone()
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", base64.StdEncoding.EncodeToString(nonce))
	if err := req.Write(conn); err != nil {
		conn.Close()
		return nil, err
	}
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, req)
	if err != nil {
		conn.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 500))
		conn.Close()
		return nil, fmt.Errorf("upgrade refused: %s %s", resp.Status, body)
	}
	return &wsConn{conn: conn, r: r}, nil
}

// writeText sends one text message.
func (c *wsConn) writeText(p []byte) error { return c.writeFrame(0x1, p) }

// writeFrame sends one final frame of opcode op, masked as a client must.
func (c *wsConn) writeFrame(op byte, p []byte) error {
	frame := []byte{0x80 | op}
	switch n := len(p); {
	case n < 126:
		frame = append(frame, 0x80|byte(n))
	case n <= 0xffff:
		frame = append(frame, 0x80|126)
		frame = binary.BigEndian.AppendUint16(frame, uint16(n))
	default:
		frame = append(frame, 0x80|127)
		frame = binary.BigEndian.AppendUint64(frame, uint64(n))
	}
	mask := make([]byte, 4)
	rand.Read(mask)
	frame = append(frame, mask...)
	for i, b := range p {
		frame = append(frame, b^mask[i%4])
	}
	_, err := c.conn.Write(frame)
	return err
}

// readText returns the next text message, answering pings and joining
// fragments.
func (c *wsConn) readText() ([]byte, error) {
	var msg []byte
	for {
		var h [2]byte
		if _, err := io.ReadFull(c.r, h[:]); err != nil {
			return nil, err
		}
		fin, op := h[0]&0x80 != 0, h[0]&0x0f
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			var b [2]byte
			if _, err := io.ReadFull(c.r, b[:]); err != nil {
				return nil, err
			}
			n = uint64(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			if _, err := io.ReadFull(c.r, b[:]); err != nil {
				return nil, err
			}
			n = binary.BigEndian.Uint64(b[:])
		}
		if n > 16<<20 {
			return nil, fmt.Errorf("frame of %d bytes", n)
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(c.r, p); err != nil {
			return nil, err
		}
		switch op {
		case 0x8:
			return nil, fmt.Errorf("closed by the server: %q", p)
		case 0x9:
			if err := c.writeFrame(0xa, p); err != nil {
				return nil, err
			}
			continue
		case 0xa:
			continue
		}
		msg = append(msg, p...)
		if fin {
			return msg, nil
		}
	}
}

func (c *wsConn) Close() error { return c.conn.Close() }

// runInKernel executes code in a Jupyter kernel over its channels socket
// (Jupyter's JSON message protocol) and returns what it printed.
func runInKernel(ws *wsConn, code string) (string, error) {
	id := fmt.Sprintf("e2e-%d", time.Now().UnixNano())
	msg := map[string]any{
		"header":        map[string]any{"msg_id": id, "username": "e2e", "session": id, "msg_type": "execute_request", "version": "5.3"},
		"parent_header": map[string]any{},
		"metadata":      map[string]any{},
		"content":       map[string]any{"code": code, "silent": false, "store_history": false, "user_expressions": map[string]any{}, "allow_stdin": false},
		"channel":       "shell",
	}
	b, _ := json.Marshal(msg)
	if err := ws.writeText(b); err != nil {
		return "", err
	}
	var out strings.Builder
	for {
		b, err := ws.readText()
		if err != nil {
			return out.String(), err
		}
		var in struct {
			Channel string
			Header  struct {
				MsgType string `json:"msg_type"`
			}
			ParentHeader struct {
				MsgID string `json:"msg_id"`
			} `json:"parent_header"`
			Content struct {
				Text, Status, Ename, Evalue string
			}
		}
		if json.Unmarshal(b, &in) != nil || in.ParentHeader.MsgID != id {
			continue
		}
		switch in.Header.MsgType {
		case "stream":
			out.WriteString(in.Content.Text)
		case "error":
			return out.String(), fmt.Errorf("%s: %s", in.Content.Ename, in.Content.Evalue)
		case "execute_reply":
			return out.String(), nil
		}
	}
}
