// Package tcpproxy is a TCP proxy on 127.0.0.1 for tests that need to
// break one connection between a process and its Redis the way a network
// does: it forwards bytes both ways and can silently stop delivering what
// the server sends on the connections that carry a pub/sub subscription,
// while every other connection keeps working. Nothing is mocked: the bytes
// are Redis's own.
package tcpproxy

import (
	"bytes"
	"net"
	"sync"
	"sync/atomic"
)

// Proxy forwards connections accepted on Addr to a target address. Build
// it with Start and Close it when done; its methods are safe for
// concurrent use.
type Proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	conns map[*link]struct{}
	wg    sync.WaitGroup
	// cut makes links that subscribed drop what the server sends.
	cut atomic.Bool
}

// link is one proxied connection.
type link struct {
	client, server net.Conn
	subscribed     atomic.Bool
}

// Start listens on 127.0.0.1:0 and forwards every connection to target.
func Start(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, conns: map[*link]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// CutSubscriptions makes every connection that sent SUBSCRIBE (now or
// later) stop delivering the server's bytes: the subscriber sees a quiet
// but open connection, as with a lost network path or dropped messages.
// Other connections are untouched.
func (p *Proxy) CutSubscriptions() { p.cut.Store(true) }

// Close stops accepting, closes every connection and waits for the
// proxy's goroutines.
func (p *Proxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	for l := range p.conns {
		l.client.Close()
		l.server.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		l := &link{client: c, server: s}
		p.mu.Lock()
		p.conns[l] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(l, true)
		go p.pipe(l, false)
	}
}

var subscribe = []byte("subscribe")

// pipe copies one direction of l until either side closes, then closes
// both.
func (p *Proxy) pipe(l *link, up bool) {
	defer p.wg.Done()
	defer func() {
		l.client.Close()
		l.server.Close()
		p.mu.Lock()
		delete(p.conns, l)
		p.mu.Unlock()
	}()
	from, to := l.server, l.client
	if up {
		from, to = l.client, l.server
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			if up && bytes.Contains(bytes.ToLower(chunk), subscribe) {
				l.subscribed.Store(true)
			}
			if up || !(l.subscribed.Load() && p.cut.Load()) {
				if _, werr := to.Write(chunk); werr != nil {
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}
