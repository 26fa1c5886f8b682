// Package backoff is authkit's one retry spacing policy: capped exponential
// backoff with jitter, the one wait on an injected clock, and the one
// parser of Retry-After
// (https://www.rfc-editor.org/rfc/rfc9110#section-10.2.3). The token engine,
// the token-endpoint client, the session and the gRPC interceptors all wait
// this way.
package backoff

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Delay returns the wait before retry number n (from 1): lo doubled n-1
// times, capped at hi, drawn at random from the upper half of that span
// (jitter), so that clients that failed together do not retry together.
func Delay(n int, lo, hi time.Duration) time.Duration {
	if lo <= 0 {
		return 0
	}
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// RetryAfter parses a Retry-After value: a delay in seconds or an HTTP date.
// A date is measured against date (the response's Date header) when that
// parses, so that a skewed local clock does not matter, else against now.
// The result is capped at limit; ok is false when v is absent or unusable.
func RetryAfter(v, date string, now time.Time, limit time.Duration) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		if n > int64(limit/time.Second) {
			return limit, true
		}
		return min(time.Duration(n)*time.Second, limit), true
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	if d, err := http.ParseTime(date); err == nil {
		now = d
	}
	return min(max(at.Sub(now), 0), limit), true
}

// Sleep waits d on a clock (its AfterFunc, such as auth.Clock's), or until
// ctx ends, and then returns ctx.Err(). A d of zero or less does not wait.
func Sleep[T interface{ Stop() bool }](ctx context.Context, afterFunc func(time.Duration, func()) T, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	done := make(chan struct{})
	t := afterFunc(d, func() { close(done) })
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		t.Stop()
		return ctx.Err()
	}
}
