package authtest

import (
	"time"

	"github.com/authkit-go/authkit/internal/fakeclock"
)

// Clock is a fake auth.Clock for tests: time stands still until Advance or
// Set moves it, and then the timers that came due run, in order, before
// Advance returns. Tests reach expiries this way without sleeping.
type Clock = fakeclock.Clock

// NewClock returns a fake clock reading start; a zero start means
// 2030-01-01T00:00:00Z.
func NewClock(start time.Time) *Clock { return fakeclock.New(start) }
