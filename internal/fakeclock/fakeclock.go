// Package fakeclock is a fake auth.Clock for tests; authtest.Clock exposes it.
package fakeclock

import (
	"slices"
	"sync"
	"time"

	"github.com/authkit-go/authkit/auth"
)

// Clock is a fake auth.Clock for tests: time stands still until Advance or
// Set moves it, and then the timers that came due run, in order, before
// Advance returns. Tests reach expiries this way without sleeping.
type Clock struct {
	mu     sync.Mutex // guards now, timers, seq
	now    time.Time
	timers []*fakeTimer
	seq    int
}

type fakeTimer struct {
	c   *Clock
	at  time.Time
	seq int
	f   func()
}

// New returns a fake clock reading start; a zero start means
// 2030-01-01T00:00:00Z.
func New(start time.Time) *Clock {
	if start.IsZero() {
		start = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	return &Clock{now: start}
}

// Now returns the fake time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc schedules f for when the fake time has moved d forward.
func (c *Clock) AfterFunc(d time.Duration, f func()) auth.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &fakeTimer{c: c, at: c.now.Add(d), seq: c.seq, f: f}
	c.timers = append(c.timers, t)
	return t
}

// Stop cancels the timer; it reports whether it was still pending.
func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	i := slices.Index(t.c.timers, t)
	if i < 0 {
		return false
	}
	t.c.timers = slices.Delete(t.c.timers, i, i+1)
	return true
}

// Advance moves the time d forward and runs, in order of their due time,
// every timer that comes due, including timers scheduled by those timers.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	target := c.now.Add(d)
	c.mu.Unlock()
	c.Set(target)
}

// Set moves the time to t (never backwards) and runs the timers due by then.
func (c *Clock) Set(t time.Time) {
	for {
		c.mu.Lock()
		next := c.nextDueLocked(t)
		if next == nil {
			if t.After(c.now) {
				c.now = t
			}
			c.mu.Unlock()
			return
		}
		c.timers = slices.DeleteFunc(c.timers, func(x *fakeTimer) bool { return x == next })
		if next.at.After(c.now) {
			c.now = next.at
		}
		c.mu.Unlock()
		next.f()
	}
}

func (c *Clock) nextDueLocked(limit time.Time) *fakeTimer {
	var best *fakeTimer
	for _, t := range c.timers {
		if t.at.After(limit) {
			continue
		}
		if best == nil || t.at.Before(best.at) || t.at.Equal(best.at) && t.seq < best.seq {
			best = t
		}
	}
	return best
}

// Jump moves the time d forward without running any timer, as a machine
// that was suspended for d sees it: the wall clock jumped, while timers,
// which run on the monotonic clock that stood still during the suspend,
// come due d later than planned. Advance(0) afterwards runs nothing new.
func (c *Clock) Jump(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for _, t := range c.timers {
		t.at = t.at.Add(d)
	}
}

// Pending returns how many timers are scheduled.
func (c *Clock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// Next returns how far ahead the earliest scheduled timer is due; ok is
// false when none is scheduled.
func (c *Clock) Next() (d time.Duration, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.nextDueLocked(time.Unix(1<<62, 0))
	if t == nil {
		return 0, false
	}
	return max(t.at.Sub(c.now), 0), true
}
