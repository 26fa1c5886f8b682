package flight

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// TestOneCallPerKey: 32 callers of one key while its call runs share it.
// synctest.Wait returns only once every caller is durably blocked, that
// is, waiting for the call's result (a caller still queued on the group's
// mutex is not durably blocked), so no caller can arrive after the call
// ended. (It used to sleep 10 ms and hope; under load two calls ran.)
func TestOneCallPerKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var g Group[string, int]
		defer g.Close()
		var calls atomic.Int32
		release := make(chan struct{})
		var wg sync.WaitGroup
		for range 32 {
			wg.Go(func() {
				v, err := g.Do(context.Background(), "k", func(context.Context) (int, error) {
					calls.Add(1)
					<-release
					return 7, nil
				})
				if v != 7 || err != nil {
					t.Errorf("Do = %v, %v", v, err)
				}
			})
		}
		synctest.Wait()
		if n := g.inFlight(); n != 1 {
			t.Fatalf("%d calls in flight, want 1", n)
		}
		close(release)
		wg.Wait()
		if n := calls.Load(); n != 1 {
			t.Errorf("%d calls for 32 callers, want 1", n)
		}
	})
}

func TestCallerGivesUpCallGoesOn(t *testing.T) {
	var g Group[string, int]
	release, finished := make(chan struct{}), make(chan struct{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := g.Do(ctx, "k", func(ctx context.Context) (int, error) {
		<-release
		defer close(finished)
		return 1, ctx.Err()
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the caller's deadline", err)
	}
	close(release)
	select {
	case <-finished: // the call ran to its end, its context not cancelled
	case <-time.After(5 * time.Second):
		t.Fatal("the call did not go on after its caller gave up")
	}
}

func TestCloseEndsCalls(t *testing.T) {
	var g Group[string, int]
	before := runtime.NumGoroutine()
	started := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		_, err := g.Do(context.Background(), "k", func(ctx context.Context) (int, error) {
			close(started)
			<-ctx.Done()
			return 0, ctx.Err()
		})
		errc <- err
	}()
	<-started
	g.Close()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want the call's cancellation", err)
	}
	if _, err := g.Do(context.Background(), "k", func(context.Context) (int, error) { return 0, nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v, want ErrClosed", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after Close, want at most %d", n, before)
	}
}

func (g *Group[K, V]) inFlight() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.calls)
}

// TestStartAndWait: Start runs one call per key without waiting; Wait joins
// the call in flight, or says at once that there is none.
func TestStartAndWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var g Group[string, int]
		defer g.Close()
		if _, _, inFlight := g.Wait(context.Background(), "k"); inFlight {
			t.Fatal("Wait found a call before any started")
		}
		release := make(chan struct{})
		var calls atomic.Int32
		fn := func(context.Context) (int, error) {
			calls.Add(1)
			<-release
			return 7, nil
		}
		g.Start("k", fn)
		g.Start("k", fn) // joins: one call per key
		got := make(chan int, 1)
		go func() {
			v, err, inFlight := g.Wait(context.Background(), "k")
			if err != nil || !inFlight {
				t.Errorf("Wait = %v, in flight %v", err, inFlight)
			}
			got <- v
		}()
		synctest.Wait() // the waiter is blocked on the call
		close(release)
		if v := <-got; v != 7 {
			t.Errorf("Wait = %d, want 7", v)
		}
		if n := calls.Load(); n != 1 {
			t.Errorf("%d calls, want 1", n)
		}
	})
}

// TestCloseWaitsForCalls: when Close returns, every call has returned.
func TestCloseWaitsForCalls(t *testing.T) {
	var g Group[string, int]
	var returned atomic.Bool
	started := make(chan struct{})
	g.Start("k", func(ctx context.Context) (int, error) {
		close(started)
		<-ctx.Done()
		time.Sleep(10 * time.Millisecond) // a slow return after cancellation
		returned.Store(true)
		return 0, ctx.Err()
	})
	<-started
	g.Close()
	if !returned.Load() {
		t.Fatal("Close returned before the call did")
	}
	g.Start("k", func(context.Context) (int, error) { t.Error("a call started after Close"); return 0, nil })
}

// TestDoHere: the call runs on its caller's goroutine and context; a
// caller that finds it in flight shares its result; when its caller gives
// up, a waiting caller that has not runs its own; a panic ends the call
// for the waiting callers (ErrPanicked) and goes on in its own.
func TestDoHere(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var g Group[string, int]
		type key struct{}
		starter, cancelStarter := context.WithCancel(context.WithValue(context.Background(), key{}, "starter"))
		release := make(chan struct{})
		var calls atomic.Int32
		fn := func(ctx context.Context) (int, error) {
			n := calls.Add(1)
			if n == 1 {
				if ctx.Value(key{}) != "starter" {
					t.Error("the call does not run on its caller's context")
				}
				<-ctx.Done() // the starter gives up
				return 0, ctx.Err()
			}
			<-release
			return int(n), nil
		}
		first := make(chan error, 1)
		go func() { _, err := g.DoHere(starter, "k", fn); first <- err }()
		synctest.Wait()
		joined := make(chan int, 2)
		for range 2 {
			go func() {
				v, err := g.DoHere(context.Background(), "k", fn)
				if err != nil {
					t.Errorf("a waiting caller: %v", err)
				}
				joined <- v
			}()
		}
		synctest.Wait()
		cancelStarter()
		if err := <-first; !errors.Is(err, context.Canceled) {
			t.Fatalf("the starter got %v, want its own cancellation", err)
		}
		synctest.Wait()
		close(release)
		if a, b := <-joined, <-joined; a != 2 || b != 2 {
			t.Errorf("waiting callers got %d and %d, want both the result of the one call they ran (2)", a, b)
		}
		if n := calls.Load(); n != 2 {
			t.Errorf("%d calls, want 2: the starter's, then one for the callers left", n)
		}

		// A panic.
		inside, proceed := make(chan struct{}), make(chan struct{})
		boom := func(context.Context) (int, error) { close(inside); <-proceed; panic("boom") }
		panicked := make(chan any, 1)
		go func() {
			defer func() { panicked <- recover() }()
			_, _ = g.DoHere(context.Background(), "p", boom)
		}()
		<-inside
		waiter := make(chan error, 1)
		go func() { _, err := g.DoHere(context.Background(), "p", fn); waiter <- err }()
		synctest.Wait()
		close(proceed)
		if r := <-panicked; r != "boom" {
			t.Fatalf("recovered %v, want the panic of the call", r)
		}
		if err := <-waiter; !errors.Is(err, ErrPanicked) {
			t.Errorf("the waiting caller got %v, want ErrPanicked", err)
		}
		if _, err := g.DoHere(context.Background(), "p", func(context.Context) (int, error) { return 9, nil }); err != nil {
			t.Errorf("a call after the panic: %v", err)
		}
	})
}
