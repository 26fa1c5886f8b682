package auth

import (
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

// stubClock is a minimal manual clock: it records the one pending timer a
// scheduler keeps.
type stubClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*stubTimer
}

type stubTimer struct {
	c       *stubClock
	at      time.Time
	f       func()
	stopped bool
}

func (c *stubClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *stubClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &stubTimer{c: c, at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}
func (t *stubTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.stopped
	t.stopped = true
	return was
}

// live returns the timers not stopped.
func (c *stubClock) live() []*stubTimer {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*stubTimer
	for _, t := range c.timers {
		if !t.stopped {
			out = append(out, t)
		}
	}
	return out
}

func TestSchedulerKeepsOneTimerAtTheEarliest(t *testing.T) {
	clock := &stubClock{now: time.Unix(1_000_000, 0)}
	s := &scheduler{clock: clock}
	engines := make([]*Engine, 200)
	at := map[*Engine]int64{}
	for i := range engines {
		e := &Engine{schedIdx: -1, clock: clock, log: discardLogger}
		e.st.Store(&state{})
		engines[i] = e
	}
	base := clock.Now().UnixNano()
	check := func() {
		t.Helper()
		if s.pending() != len(at) {
			t.Fatalf("pending = %d, want %d", s.pending(), len(at))
		}
		for i, en := range s.entries {
			if en.e.schedIdx != i {
				t.Fatalf("entry %d: engine index %d", i, en.e.schedIdx)
			}
			if en.at != at[en.e] {
				t.Fatalf("entry %d due %d, want %d", i, en.at, at[en.e])
			}
			if l, r := 2*i+1, 2*i+2; l < len(s.entries) && s.entries[l].at < en.at || r < len(s.entries) && s.entries[r].at < en.at {
				t.Fatalf("heap order broken at %d", i)
			}
		}
		live := clock.live()
		if len(at) == 0 {
			if len(live) != 0 {
				t.Fatalf("%d timers armed for an empty schedule", len(live))
			}
			return
		}
		earliest := slices.Min(slices.Collect(func(yield func(int64) bool) {
			for _, v := range at {
				if !yield(v) {
					return
				}
			}
		}))
		if len(live) != 1 || live[0].at.UnixNano() != earliest {
			t.Fatalf("%d timers armed, want one at the earliest entry", len(live))
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		e := engines[r.IntN(len(engines))]
		if r.IntN(4) == 0 {
			s.set(e, 0)
			delete(at, e)
		} else {
			v := base + int64(1+r.IntN(1_000_000))
			s.set(e, v)
			at[e] = v
		}
		check()
	}
	// Time passes to the middle of the schedule: the due entries fire, the
	// others stay, and the timer moves to the next one.
	mid := base + 500_000
	clock.mu.Lock()
	clock.now = time.Unix(0, mid)
	clock.mu.Unlock()
	live := clock.live()
	live[0].stopped = true
	live[0].f()
	for e, v := range at {
		if v <= mid {
			delete(at, e)
		}
	}
	check()
}

// A timer that fires while set re-arms the scheduler (fire waiting for the
// lock) must not orphan the new timer: one timer stays armed.
func TestSchedulerStaleFireKeepsOneTimer(t *testing.T) {
	clock := &stubClock{now: time.Unix(1_000_000, 0)}
	s := &scheduler{clock: clock}
	a := &Engine{schedIdx: -1, clock: clock, log: discardLogger}
	b := &Engine{schedIdx: -1, clock: clock, log: discardLogger}
	a.st.Store(&state{})
	b.st.Store(&state{})
	base := clock.Now().UnixNano()
	s.set(a, base+int64(time.Second))
	first := clock.live()[0]
	s.set(b, base+int64(time.Millisecond)) // re-arms: the first timer is stopped...
	first.f()                              // ...but had already fired
	if n := len(clock.live()); n != 1 {
		t.Errorf("%d timers armed after a stale fire, want 1", n)
	}
}
