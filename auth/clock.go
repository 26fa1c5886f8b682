package auth

import "time"

// Clock is the engine's source of time. Tests pass a fake clock
// (authtest.NewClock) so that expiries are reached without sleeping.
//
// Validity is always judged on Now, the wall clock; AfterFunc only schedules
// background refreshes, and correctness never depends on it firing on time.
// Engines on SystemClock read a coarse copy of the wall clock, refreshed
// every millisecond while they are in use, instead of calling time.Now.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// AfterFunc calls f in its own goroutine once d has elapsed.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending call of [Clock.AfterFunc].
type Timer interface {
	// Stop prevents the call if it has not started; it reports whether it did.
	Stop() bool
}

// SystemClock returns the clock of the time package.
func SystemClock() Clock { return systemClock{} }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
