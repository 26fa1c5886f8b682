package oauthclient

import (
	"time"

	"github.com/authkit-go/authkit/internal/backoff"
)

// RetryPolicy decides whether a failed attempt is retried and how long to
// wait first. attempt counts the attempts made so far, from 1. status is the
// HTTP status (429 or 5xx), or 0 after a network error err. retryAfter is the
// server's Retry-After, or 0. The client consults the policy only for
// network errors, 429 and 5xx answers; an OAuth 4xx answer and the device
// flow's authorization_pending and slow_down are never retried.
type RetryPolicy func(attempt, status int, retryAfter time.Duration, err error) (wait time.Duration, retry bool)

// Retry limits of DefaultRetry.
const (
	// DefaultMaxAttempts is the number of attempts, the first included.
	defaultMaxAttempts = 4
	// DefaultRetryMin is the wait before the first retry (before jitter).
	defaultRetryMin = 500 * time.Millisecond
	// DefaultRetryMax caps the exponential backoff.
	defaultRetryMax = 8 * time.Second
	// DefaultRetryAfterMax caps a server's Retry-After.
	defaultRetryAfterMax = 30 * time.Second
)

// DefaultRetry retries up to DefaultMaxAttempts attempts in all, waiting
// defaultRetryMin doubled per attempt up to DefaultRetryMax, each wait drawn
// from its upper half (jitter); a Retry-After is honoured up to
// DefaultRetryAfterMax.
func DefaultRetry(attempt, _ int, retryAfter time.Duration, _ error) (time.Duration, bool) {
	if attempt >= defaultMaxAttempts {
		return 0, false
	}
	if retryAfter > 0 {
		return min(retryAfter, defaultRetryAfterMax), true
	}
	return backoff.Delay(attempt, defaultRetryMin, defaultRetryMax), true
}

// noRetry never retries.
func noRetry(int, int, time.Duration, error) (time.Duration, bool) { return 0, false }
