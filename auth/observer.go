package auth

import (
	"context"
	"sync/atomic"
)

// An Observer receives what an engine does on its slow paths — fetches,
// waits, store operations, revocations, logins — for telemetry. Package
// auth/otelauth reports them to OpenTelemetry; a nil Observer costs
// nothing, and package auth imports no telemetry library, so that a binary
// that does not want telemetry does not carry one. A read served from the
// cache calls no method. The methods are called outside the engine's
// locks, with the engine's Name as handler; errors they are given hold no
// secret (the library's rule), but an Observer should report kinds, not
// texts.
type Observer interface {
	// Fetch is called when a fetch starts: reason is "refresh" (early, in
	// the background), "expired" (callers wait) or "rejected" (a service
	// refused the token). The FetchObserver follows its attempts.
	Fetch(ctx context.Context, handler, reason string) (context.Context, FetchObserver)
	// Wait is called when a caller starts to wait for a token; done is
	// called when it stops waiting.
	Wait(ctx context.Context, handler string) (done func(err error))
	// Op is called around an operation: "store.load", "store.save",
	// "store.delete", "store.lock", "revoke" or "login".
	Op(ctx context.Context, handler, op string) (context.Context, func(err error))
}

// A FetchObserver follows one fetch.
type FetchObserver interface {
	// Attempt reports an attempt's outcome (nil: it got the token).
	Attempt(n int, err error)
	// End reports the end of the fetch.
	End(err error)
}

// A ReadObserver is an Observer that also counts the reads an engine
// serves from its cache, so that telemetry can report the share of reads
// served without waiting (the waits reach Observer.Wait). Counting costs
// a cached read one atomic add, and only for an engine given a
// ReadObserver: an engine without one counts nothing.
type ReadObserver interface {
	Observer
	// ObserveReads is called once as an engine is made: cached returns
	// how many reads the engine has served from its cache so far. The
	// engine calls stop when it is closed; until then the Observer may
	// call cached at any time, from any goroutine.
	ObserveReads(handler string, cached func() uint64) (stop func())
}

// observing is an engine's Observer and name; engines without an Observer
// share one, so that an engine holds a pointer and not an interface.
type observing struct {
	o     Observer
	name  string
	count bool     // o is a ReadObserver: count the reads served
	stop  func()   // ends ObserveReads
	_     [64]byte // keeps reads off the cache line of the fields above, which every read loads
	reads atomic.Uint64
	_     [56]byte
}

var notObserved = &observing{}

func newObserving(o Observer, name string) *observing {
	if o == nil {
		return notObserved
	}
	if name == "" {
		name = "engine"
	}
	_, count := o.(ReadObserver)
	return &observing{o: o, name: name, count: count}
}

// start begins the observation of the engine's reads: once the engine is
// made, so that an engine NewEngine refused is not observed.
func (b *observing) start() {
	if b.count {
		b.stop = b.o.(ReadObserver).ObserveReads(b.name, b.reads.Load)
	}
}

// served counts a read served from the cache, when counted.
func (b *observing) served() {
	if b.count {
		b.reads.Add(1)
	}
}

// close ends the observation of the engine's reads.
func (b *observing) close() {
	if b.stop != nil {
		b.stop()
	}
}

// nopFetch follows a fetch nobody observes.
type nopFetch struct{}

func (nopFetch) Attempt(int, error) {}
func (nopFetch) End(error)          {}

func nopDone(error) {}

func (b *observing) fetch(ctx context.Context, reason string) (context.Context, FetchObserver) {
	if b.o == nil {
		return ctx, nopFetch{}
	}
	return b.o.Fetch(ctx, b.name, reason)
}

func (b *observing) wait(ctx context.Context) func(error) {
	if b.o == nil {
		return nopDone
	}
	return b.o.Wait(ctx, b.name)
}

func (b *observing) op(ctx context.Context, op string) (context.Context, func(error)) {
	if b.o == nil {
		return ctx, nopDone
	}
	return b.o.Op(ctx, b.name, op)
}

// observedErr is err as an Observer sees it: a fetch superseded by a
// login or logout is cancelled.
func observedErr(err error) error {
	if err == errSuperseded {
		return context.Canceled
	}
	return err
}

// observedStore reports the operations of a Store.
type observedStore struct {
	inner Store
	b     *observing
}

func (s observedStore) Load(ctx context.Context, key StoreKey) (*Token, error) {
	ctx, done := s.b.op(ctx, "store.load")
	tok, err := s.inner.Load(ctx, key)
	done(err)
	return tok, err
}

func (s observedStore) Save(ctx context.Context, key StoreKey, tok *Token) error {
	ctx, done := s.b.op(ctx, "store.save")
	err := s.inner.Save(ctx, key, tok)
	done(err)
	return err
}

func (s observedStore) Delete(ctx context.Context, key StoreKey) error {
	ctx, done := s.b.op(ctx, "store.delete")
	err := s.inner.Delete(ctx, key)
	done(err)
	return err
}

// observedLocker reports the waits for a Locker's lock.
type observedLocker struct {
	inner Locker
	b     *observing
}

func (l observedLocker) Lock(ctx context.Context, key StoreKey) (func(), error) {
	ctx, done := l.b.op(ctx, "store.lock")
	unlock, err := l.inner.Lock(ctx, key)
	done(err)
	return unlock, err
}
