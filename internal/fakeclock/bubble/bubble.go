// Package bubble drives a fake clock inside a testing/synctest bubble. It
// is apart from fakeclock so that no program linking authtest links the
// testing packages.
package bubble

import (
	"testing/synctest"

	"github.com/authkit-go/authkit/internal/fakeclock"
)

// AdvanceWhenBlocked runs the clock's timers one at a time, each once
// every goroutine of the bubble is blocked, until done reports true. It
// reports false when nothing is left to run and done is still false.
func AdvanceWhenBlocked(c *fakeclock.Clock, done func() bool) bool {
	for {
		synctest.Wait()
		if done() {
			return true
		}
		d, ok := c.Next()
		if !ok {
			return false
		}
		c.Advance(d)
	}
}
