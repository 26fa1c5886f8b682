// Package flight runs one call per key at a time and lets every caller wait
// for it only as long as its own context allows: the pattern of go-oidc's
// RemoteKeySet. A call started by Do or Start runs on the group's lifetime,
// not on the context of whichever caller started it, so that a caller who
// gives up does not cancel it for the others; Close ends it. A call started
// by DoHere runs on its caller's goroutine and context instead (a person's
// login, which prompts on that caller's terminal).
package flight

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrClosed is returned by Do after Close.
var ErrClosed = errors.New("flight: closed")

// ErrPanicked is what the callers waiting for a call of DoHere get when it
// panicked; the panic goes on in the caller who ran it.
var ErrPanicked = errors.New("flight: the call in flight panicked")

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
	// gaveUp: the call ended with the error of its caller's context (DoHere).
	gaveUp bool
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

// DoHere is Do for a call that must run on its caller's goroutine and
// context: fn runs there, one call per key at a time. Callers that find a
// call of key in flight wait for its result as long as their own ctx
// allows, and run their own when it ended because its caller gave up (fn
// returned that caller's ctx error) while they have not. If fn panics, the
// call ends with ErrPanicked for those waiting, and the panic goes on.
func (g *Group[K, V]) DoHere(ctx context.Context, key K, fn func(ctx context.Context) (V, error)) (V, error) {
	for {
		g.mu.Lock()
		if c, ok := g.calls[key]; ok {
			g.mu.Unlock()
			v, err := wait(ctx, c)
			if err != nil && ctx.Err() == nil && c.gaveUp {
				continue // its caller gave up; this one has not
			}
			return v, err
		}
		c := &call[V]{done: make(chan struct{}), err: ErrPanicked}
		if g.calls == nil {
			g.calls = make(map[K]*call[V])
		}
		g.calls[key] = c
		g.mu.Unlock()
		return g.runHere(ctx, key, c, fn)
	}
}

// runHere runs the call c of key on this goroutine and ends it, even if fn
// panics: a call left in flight would make every later caller wait for it.
func (g *Group[K, V]) runHere(ctx context.Context, key K, c *call[V], fn func(ctx context.Context) (V, error)) (V, error) {
	defer func() {
		g.mu.Lock()
		delete(g.calls, key)
		g.mu.Unlock()
		close(c.done)
	}()
	v, err := fn(ctx)
	c.val, c.err = v, err
	c.gaveUp = err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err())
	return v, err
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
