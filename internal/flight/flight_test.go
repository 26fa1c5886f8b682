package flight

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestOneCallPerKey(t *testing.T) {
	var g Group[string, int]
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
	for g.inFlight() == 0 {
		runtime.Gosched()
	}
	time.Sleep(10 * time.Millisecond) // let the other callers join; not a wait for an expiry
	close(release)
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Errorf("%d calls for 32 callers, want 1", n)
	}
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
