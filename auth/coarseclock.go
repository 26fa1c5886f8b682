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

var coarse struct {
	now     atomic.Int64 // wall clock, Unix ns; 0 while the ticker is stopped
	used    atomic.Bool  // read since the last tick
	running atomic.Bool  // a ticker goroutine runs
}

// coarseNow returns the wall clock in Unix nanoseconds, at most about one
// tick old.
func coarseNow() int64 {
	n := coarse.now.Load()
	if n == 0 {
		return coarseStart()
	}
	if !coarse.used.Load() {
		coarse.used.Store(true)
	}
	return n
}

// coarseStart reads the precise clock and starts the ticker if none runs.
func coarseStart() int64 {
	now := time.Now().UnixNano()
	if coarse.running.CompareAndSwap(false, true) {
		coarse.used.Store(true)
		coarse.now.Store(now)
		go coarseTicker()
	}
	return now
}

func coarseTicker() {
	t := time.NewTicker(coarseTick)
	defer t.Stop()
	idle := 0
	for range t.C {
		coarse.now.Store(time.Now().UnixNano())
		if coarse.used.Swap(false) {
			idle = 0
			continue
		}
		if idle++; idle >= coarseIdle {
			// Readers see 0 and fall back to the precise clock until one
			// of them starts a new ticker.
			coarse.now.Store(0)
			coarse.running.Store(false)
			return
		}
	}
}
