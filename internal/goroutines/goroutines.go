// Package goroutines holds the one goroutine-leak check of authkit's
// tests: every package that starts goroutines runs its tests through
// [VerifyTestMain], which fails the run if any goroutine is left once they end.
package goroutines

import (
	"testing"

	"go.uber.org/goleak"
)

// ignored are goroutines that are not authkit's: a net/http connection
// kept in a transport's idle pool (the pool belongs to the caller's or
// net/http's default client, and goes when the pool is closed or the
// connection times out).
var ignored = []goleak.Option{
	goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
	goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
}

// VerifyTestMain runs m's tests and fails the run if goroutines other than the
// ignored ones are left when they end (goleak retries for a while, so
// goroutines that are ending, such as the coarse clock's ticker after its
// idle time, are given time to).
func VerifyTestMain(m *testing.M, opts ...goleak.Option) {
	goleak.VerifyTestMain(m, append(opts, ignored...)...)
}
