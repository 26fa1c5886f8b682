package auth_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/internal/fakeclock"
	"github.com/authkit-go/authkit/internal/fakeclock/bubble"
)

// advanceUntil runs the engine's timers until done (see
// bubble.AdvanceWhenBlocked).
func advanceUntil(t *testing.T, clock *fakeclock.Clock, done func() bool) {
	t.Helper()
	if !bubble.AdvanceWhenBlocked(clock, done) {
		t.Fatal("nothing left to wait for, and not done")
	}
}

// A provider that fails seven times in a row and then answers: with the
// default backoff the waits alone (at least 0.125 + 0.25 + … + 8 s) outlast a
// caller's 12-second deadline, although the provider answered in time.
// While a caller waits, the waits are capped at 2 s, so it gets the token.
func TestEngineWaitingCallerIsNotBackedOffPastItsDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := fakeclock.New(time.Time{})
		g := &fakeGrant{clock: clock, lifetime: time.Hour}
		for range 7 {
			g.fail = append(g.fail, transientErr{})
		}
		e := newEngine(t, g, nil)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		clock.AfterFunc(12*time.Second, cancel)
		start := clock.Now()
		got := read(e, ctx)
		advanceUntil(t, clock, func() bool { return len(got) > 0 })
		if err := <-got; err != nil {
			t.Fatalf("after %s and %d fetches: %v", clock.Now().Sub(start), g.count(), err)
		}
		if n := g.count(); n != 8 {
			t.Errorf("%d fetches, want 8", n)
		}
	})
}

// The failure streak begins with an early refresh, when nobody waits: the
// waits grow as they should (sparing a failing provider) and the sixth is
// at least 4 s long when the token can no longer be served and a caller
// with 3 s to spare arrives. Its arrival cuts the wait short.
func TestEngineCallerArrivingDuringALongBackoffCutsItShort(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := fakeclock.New(time.Time{})
		g := &fakeGrant{clock: clock, lifetime: 20 * time.Second}
		e := newEngine(t, g, nil)
		if _, err := readHub(e, context.Background()); err != nil {
			t.Fatal(err)
		}
		g.mu.Lock()
		for range 6 {
			g.fail = append(g.fail, transientErr{})
		}
		g.mu.Unlock()
		advanceUntil(t, clock, func() bool { return g.count() == 7 }) // the sixth failure in a row
		synctest.Wait()
		if d, ok := clock.Next(); !ok || d < 4*time.Second {
			t.Fatalf("the wait after six failures is %s (scheduled %t), want at least 4 s", d, ok)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		clock.AfterFunc(3*time.Second, cancel)
		got := read(e, ctx)
		advanceUntil(t, clock, func() bool { return len(got) > 0 })
		if err := <-got; err != nil {
			t.Fatalf("a caller with 3 s to spare: %v", err)
		}
	})
}

// read reads the hub's headers on a goroutine of its own; the channel
// receives the result.
func read(e *auth.Engine, ctx context.Context) chan error {
	c := make(chan error, 1)
	go func() {
		_, err := readHub(e, ctx)
		c <- err
	}()
	return c
}
