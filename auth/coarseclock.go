package auth

import (
	"sync/atomic"
	"time"
)

// The engines' hot path must read the wall clock on every call — a token
// past its wall-clock expiry is never served, even after a suspend that
// stopped every timer — yet time.Now costs tens of nanoseconds on virtual
// machines whose clock source is not the TSC (58 ns on the 2-vCPU machines
// this project is measured on). coarseNow is the shared answer: a ticker
// stores the wall clock every coarseTick while engines are being read, and
// a read is one atomic load.
//
// It runs at most one tick behind (a few ticks on a machine so loaded that
// the ticker goroutine waits for a CPU; the engine's serve margin absorbs
// that). After a suspend, it is right again one tick after the resume: the
// ticker runs on the monotonic clock, which stood still during the sleep.
// The ticker stops after coarseIdle without reads, and the next read
// restarts it, so an idle process pays nothing.
const (
	coarseTick = time.Millisecond
	coarseIdle = 100 // ticks without a read before the ticker stops
)

// coarseClock is a coarse wall clock. The engines share one, coarse; tests
// make their own with another source.
type coarseClock struct {
	source  func() time.Time // the precise wall clock; nil means time.Now
	now     atomic.Int64     // wall clock, Unix ns; 0 while the ticker is stopped
	used    atomic.Bool      // read since the last tick
	running atomic.Bool      // a ticker goroutine runs
}

// coarse is the engines' coarse clock, on time.Now.
var coarse coarseClock

// coarseNow returns the wall clock in Unix nanoseconds, at most about one
// tick old.
func coarseNow() int64 { return coarse.read() }

// read returns the wall clock in Unix nanoseconds, at most about one tick
// old (TestCoarseClockOnItsRealPath).
func (c *coarseClock) read() int64 {
	n := c.now.Load()
	if n == 0 {
		return c.start()
	}
	if !c.used.Load() {
		c.used.Store(true)
	}
	return n
}

// wall reads the precise wall clock.
func (c *coarseClock) wall() int64 {
	if c.source != nil {
		return c.source().UnixNano()
	}
	return time.Now().UnixNano()
}

// start reads the precise clock and starts the ticker if none runs.
func (c *coarseClock) start() int64 {
	now := c.wall()
	if c.running.CompareAndSwap(false, true) {
		c.used.Store(true)
		c.now.Store(now)
		go c.tick()
	}
	return now
}

// tick stores the wall clock every coarseTick until coarseIdle ticks pass
// without a read.
func (c *coarseClock) tick() {
	t := time.NewTicker(coarseTick)
	defer t.Stop()
	idle := 0
	for range t.C {
		c.now.Store(c.wall())
		if c.used.Swap(false) {
			idle = 0
			continue
		}
		if idle++; idle >= coarseIdle {
			// Readers see 0 and fall back to the precise clock until one
			// of them starts a new ticker.
			c.now.Store(0)
			c.running.Store(false)
			return
		}
	}
}
