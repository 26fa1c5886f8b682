// Package flight runs one call per key at a time and lets every caller wait
// for it only as long as its own context allows: the pattern of go-oidc's
// RemoteKeySet. The call runs on the group's lifetime, not on the context of
// whichever caller started it, so that a caller who gives up does not cancel
// it for the others; Close ends it.
package flight

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrClosed is returned by Do after Close.
var ErrClosed = errors.New("flight: closed")

// Group runs calls keyed by K. The zero value is ready to use.
type Group[K comparable, V any] struct {
	// Timeout bounds each call; zero means 30 seconds.
	Timeout time.Duration

	once   sync.Once
	ctx    context.Context // the group's lifetime; calls run on it
	cancel context.CancelFunc
	wg     sync.WaitGroup // counts calls in flight

	mu    sync.Mutex // guards calls
	calls map[K]*call[V]
}

type call[V any] struct {
	done chan struct{}
	val  V
	err  error
}

func (g *Group[K, V]) init() {
	g.once.Do(func() { g.ctx, g.cancel = context.WithCancel(context.Background()) })
}

// Do returns the result of fn for key: of the call in flight for key, or of
// a new one that Do starts. The caller waits as long as ctx allows and then
// gets ctx's error; the call goes on for the others.
func (g *Group[K, V]) Do(ctx context.Context, key K, fn func(ctx context.Context) (V, error)) (V, error) {
	c, err := g.start(key, fn)
	if err != nil {
		var zero V
		return zero, err
	}
	return wait(ctx, c)
}

// Start starts fn for key in its own goroutine unless a call for key is in
// flight, and returns at once. fn gets the group's context, bounded by
// Timeout. It does nothing after Close.
func (g *Group[K, V]) Start(key K, fn func(ctx context.Context) (V, error)) {
	_, _ = g.start(key, fn)
}

// Wait waits, as long as ctx allows, for the call in flight for key and
// returns its result; inFlight is false, at once, when there is none.
func (g *Group[K, V]) Wait(ctx context.Context, key K) (v V, err error, inFlight bool) {
	g.mu.Lock()
	c, ok := g.calls[key]
	g.mu.Unlock()
	if !ok {
		return v, nil, false
	}
	v, err = wait(ctx, c)
	return v, err, true
}

func (g *Group[K, V]) start(key K, fn func(ctx context.Context) (V, error)) (*call[V], error) {
	g.init()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ctx.Err() != nil {
		return nil, ErrClosed
	}
	if c, ok := g.calls[key]; ok {
		return c, nil
	}
	c := &call[V]{done: make(chan struct{})}
	if g.calls == nil {
		g.calls = make(map[K]*call[V])
	}
	g.calls[key] = c
	timeout := g.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	g.wg.Go(func() {
		cctx, cancel := context.WithTimeout(g.ctx, timeout)
		defer cancel()
		c.val, c.err = fn(cctx)
		g.mu.Lock()
		delete(g.calls, key)
		g.mu.Unlock()
		close(c.done)
	})
	return c, nil
}

func wait[V any](ctx context.Context, c *call[V]) (V, error) {
	select {
	case <-c.done:
		return c.val, c.err
	case <-ctx.Done():
		var zero V
		return zero, ctx.Err()
	}
}

// Close cancels the calls in flight and waits for them to return; later
// calls of Do return ErrClosed.
func (g *Group[K, V]) Close() {
	g.init()
	g.mu.Lock()
	g.cancel() // under mu: no call starts after this
	g.mu.Unlock()
	g.wg.Wait()
}
