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
// a new one started in its own goroutine. fn gets the group's context,
// bounded by Timeout. The caller waits as long as ctx allows and then gets
// ctx's error; the call goes on for the others.
func (g *Group[K, V]) Do(ctx context.Context, key K, fn func(ctx context.Context) (V, error)) (V, error) {
	g.init()
	var zero V
	if err := g.ctx.Err(); err != nil {
		return zero, ErrClosed
	}
	g.mu.Lock()
	c, ok := g.calls[key]
	if !ok {
		c = &call[V]{done: make(chan struct{})}
		if g.calls == nil {
			g.calls = make(map[K]*call[V])
		}
		g.calls[key] = c
		timeout := g.Timeout
		if timeout <= 0 {
			timeout = 30 * time.Second
		}
		go func() {
			cctx, cancel := context.WithTimeout(g.ctx, timeout)
			defer cancel()
			c.val, c.err = fn(cctx)
			g.mu.Lock()
			delete(g.calls, key)
			g.mu.Unlock()
			close(c.done)
		}()
	}
	g.mu.Unlock()
	select {
	case <-c.done:
		return c.val, c.err
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// Close cancels the calls in flight; later calls of Do return ErrClosed.
func (g *Group[K, V]) Close() {
	g.init()
	g.cancel()
}
