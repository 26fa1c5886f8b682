package auth

import (
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// TestCoarseClockOnItsRealPath runs the coarse clock's own ticker (in a
// synctest bubble, whose time is virtual): a read starts it; reads are at
// most one tick behind the wall clock; after a suspend — the wall clock
// jumps, the ticker's monotonic clock does not — the first tick after the
// resume is right again; and without reads the ticker stops, leaving no
// goroutine (the bubble would not end otherwise).
func TestCoarseClockOnItsRealPath(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var suspended atomic.Int64 // how far the wall clock jumped
		c := &coarseClock{source: func() time.Time { return time.Now().Add(time.Duration(suspended.Load())) }}
		behind := func() time.Duration { return time.Duration(c.source().UnixNano() - c.read()) }

		if d := behind(); d != 0 {
			t.Fatalf("the first read is %v behind, want the precise clock", d)
		}
		if !c.running.Load() {
			t.Fatal("the first read did not start the ticker")
		}
		for range 50 {
			time.Sleep(coarseTick / 3)
			if d := behind(); d < 0 || d > coarseTick {
				t.Fatalf("a read is %v behind the wall clock, want at most one tick (%v)", d, coarseTick)
			}
		}

		suspended.Store(int64(time.Hour)) // a laptop lid closed for an hour
		time.Sleep(coarseTick)
		if d := behind(); d < 0 || d > coarseTick {
			t.Fatalf("one tick after the resume a read is %v behind the wall clock, want at most one tick", d)
		}

		time.Sleep(2 * coarseIdle * coarseTick) // no reads
		synctest.Wait()
		if c.running.Load() || c.now.Load() != 0 {
			t.Fatal("the ticker still runs after 200 ticks without a read")
		}
		if d := behind(); d != 0 {
			t.Fatalf("a read with the ticker stopped is %v behind, want the precise clock", d)
		}
		time.Sleep(2 * coarseIdle * coarseTick) // and let the ticker it restarted stop
	})
}

// TestSchedulerOnRealTimers runs the scheduler on the system clock (in a
// synctest bubble): engines are run when due by the one timer, in order,
// and once none is scheduled no timer is left.
func TestSchedulerOnRealTimers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &scheduler{clock: systemClock{}}
		start := time.Now()
		var engines []*Engine
		for i := range 3 {
			e := &Engine{schedIdx: -1, clock: systemClock{}, log: discardLogger}
			e.st.Store(&state{}) // no credentials: refreshDue returns at once
			engines = append(engines, e)
			s.set(e, start.Add(time.Duration(3-i)*time.Second).UnixNano())
		}
		for i, want := range []int{3, 2, 1, 0} {
			time.Sleep(time.Until(start.Add(time.Duration(i)*time.Second + time.Second/2)))
			synctest.Wait()
			if n := s.pending(); n != want {
				t.Fatalf("after %d.5 s: %d engines scheduled, want %d", i, n, want)
			}
		}
		s.mu.Lock()
		left := s.timer
		s.mu.Unlock()
		if left != nil {
			t.Error("a timer is left with nothing scheduled")
		}
		s.set(engines[0], time.Now().Add(time.Hour).UnixNano())
		s.set(engines[0], 0) // cancelled: the timer goes with it
		if s.timer != nil || s.pending() != 0 {
			t.Error("cancelling the only schedule left a timer")
		}
	})
}
