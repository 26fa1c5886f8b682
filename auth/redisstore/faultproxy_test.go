package redisstore_test

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// faultMode is what a faultProxy does with the traffic between its
// clients and its target.
type faultMode int

const (
	// faultPass forwards everything at once.
	faultPass faultMode = iota
	// faultBlackHole accepts connections and bytes but answers nothing:
	// each direction holds what it read, as a network that drops packets
	// does, and delivers it if the proxy passes again (so a command a
	// client gave up on may still run later, as over a real network).
	faultBlackHole
	// faultDrop closes every connection, discarding what was held, and
	// refuses new ones (the port is closed) until the mode changes.
	faultDrop
	// faultDelay forwards each chunk after the latency set by SetDelay.
	faultDelay
)

func (m faultMode) String() string {
	return [...]string{"pass", "black hole", "drop", "delay"}[m]
}

// faultProxy is a TCP proxy in front of a server (Redis) whose faults a
// test switches with SetMode. It is closed, and its goroutines ended, when
// the test ends.
type faultProxy struct {
	t      testing.TB
	target string
	addr   string

	mu      sync.Mutex // guards the fields below
	mode    faultMode
	delay   time.Duration
	changed chan struct{} // closed and replaced at each change of mode
	ln      net.Listener  // nil while dropping
	conns   map[*proxyConn]struct{}
	closed  bool

	refused atomic.Int32 // connections closed because the target refused the dial

	wg sync.WaitGroup
}

// proxyConn is one client connection and its connection to the target.
type proxyConn struct {
	client, server net.Conn
	once           sync.Once
	done           chan struct{} // closed when the connection is closed
}

func (c *proxyConn) close() {
	c.once.Do(func() {
		close(c.done)
		c.client.Close()
		c.server.Close()
	})
}

// newFaultProxy starts a proxy to target on a free loopback port, in
// faultPass mode.
func newFaultProxy(t testing.TB, target string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{t: t, target: target, addr: ln.Addr().String(), delay: 100 * time.Millisecond,
		changed: make(chan struct{}), ln: ln, conns: map[*proxyConn]struct{}{}}
	p.wg.Add(1)
	go p.accept(ln)
	t.Cleanup(p.close)
	return p
}

// Addr is the address the clients dial.
func (p *faultProxy) Addr() string { return p.addr }

// SetDelay sets the latency of faultDelay (100 ms until set).
func (p *faultProxy) SetDelay(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delay = d
}

// SetMode switches the proxy to m; it takes effect on the connections
// already open too.
func (p *faultProxy) SetMode(m faultMode) {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.mode == m {
		return
	}
	switch {
	case m == faultDrop:
		p.ln.Close()
		p.ln = nil
		for c := range p.conns {
			c.close()
		}
	case p.mode == faultDrop:
		ln, err := net.Listen("tcp", p.addr)
		if err != nil {
			p.t.Fatalf("fault proxy: listening again on %s: %v", p.addr, err)
		}
		p.ln = ln
		p.wg.Add(1)
		go p.accept(ln)
	}
	p.mode = m
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *faultProxy) close() {
	p.mu.Lock()
	p.closed = true
	if p.ln != nil {
		p.ln.Close()
	}
	for c := range p.conns {
		c.close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *faultProxy) accept(ln net.Listener) {
	defer p.wg.Done()
	for {
		client, err := ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				p.t.Errorf("fault proxy: accept: %v", err)
			}
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			// The target is down (a test killed it on purpose): the
			// client sees its connection closed, as behind a real proxy
			// or load balancer, and its next dial may find the target
			// back.
			p.refused.Add(1)
			client.Close()
			continue
		}
		c := &proxyConn{client: client, server: server, done: make(chan struct{})}
		p.mu.Lock()
		if p.closed || p.mode == faultDrop {
			p.mu.Unlock()
			c.close()
			continue
		}
		p.conns[c] = struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		go p.forward(c, client, server)
		go p.forward(c, server, client)
	}
}

// forward copies src to dst, chunk by chunk, as the mode allows.
func (p *faultProxy) forward(c *proxyConn, src, dst net.Conn) {
	defer p.wg.Done()
	defer func() {
		c.close()
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			delay, ok := p.await(c)
			if !ok {
				return
			}
			if delay > 0 {
				t := time.NewTimer(delay)
				select {
				case <-t.C:
				case <-c.done:
					t.Stop()
					return
				}
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// await waits while the proxy black-holes and returns the latency to add
// to a chunk; ok is false when the chunk must be discarded with c.
func (p *faultProxy) await(c *proxyConn) (delay time.Duration, ok bool) {
	for {
		p.mu.Lock()
		mode, changed, d := p.mode, p.changed, p.delay
		p.mu.Unlock()
		switch mode {
		case faultPass:
			return 0, true
		case faultDelay:
			return d, true
		case faultDrop:
			return 0, false
		}
		select {
		case <-changed:
		case <-c.done:
			return 0, false
		}
	}
}

// The proxy's modes do what they say, for the tests that rely on them.
func TestFaultProxy(t *testing.T) {
	proxy := newFaultProxy(t, redisAddr(t))
	rdb := redis.NewClient(&redis.Options{Addr: proxy.Addr(), ContextTimeoutEnabled: true, MaxRetries: -1})
	defer rdb.Close()
	ping := func(d time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		return rdb.Ping(ctx).Err()
	}
	if err := ping(time.Second); err != nil {
		t.Fatalf("pass: %v", err)
	}
	proxy.SetDelay(300 * time.Millisecond)
	proxy.SetMode(faultDelay)
	began := time.Now()
	if err := ping(5 * time.Second); err != nil {
		t.Fatalf("delay: %v", err)
	}
	if took := time.Since(began); took < 600*time.Millisecond {
		t.Errorf("delay: a round trip took %v, want at least 2 × 300 ms", took)
	}
	proxy.SetMode(faultBlackHole)
	if err := ping(200 * time.Millisecond); !errors.Is(err, context.DeadlineExceeded) && !isTimeout(err) {
		t.Errorf("black hole: %v, want a timeout", err)
	}
	proxy.SetMode(faultDrop)
	if c, err := net.Dial("tcp", proxy.Addr()); !errors.Is(err, syscall.ECONNREFUSED) {
		if c != nil {
			c.Close()
		}
		t.Errorf("drop: dial: %v, want connection refused", err)
	}
	proxy.SetMode(faultPass)
	if !eventually(func() bool { return ping(time.Second) == nil }) {
		t.Error("pass again: no answer within 5 s")
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// A target that is down (a test killed it) refuses the proxy's dial: the
// client finds its connection closed, as behind a real proxy, and the
// test goes on; once the target is back, connections pass again.
func TestFaultProxyTargetDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := ln.Addr().String()
	ln.Close() // down: dials are refused
	proxy := newFaultProxy(t, target)
	c, err := net.Dial("tcp", proxy.Addr())
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Errorf("read from a connection to a target that is down: %d bytes, %v; want it closed", n, err)
	}
	c.Close()
	if n := proxy.refused.Load(); n != 1 {
		t.Errorf("%d refused dials counted, want 1", n)
	}

	ln, err = net.Listen("tcp", target) // back on the same port
	if err != nil {
		t.Skipf("the target's port was taken meanwhile: %v", err)
	}
	defer ln.Close()
	go func() {
		if s, err := ln.Accept(); err == nil {
			s.Write([]byte("+PONG\r\n"))
			s.Close()
		}
	}()
	c, err = net.Dial("tcp", proxy.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c)
	if string(got) != "+PONG\r\n" {
		t.Errorf("through the proxy to the target back up: %q, %v", got, err)
	}
}
