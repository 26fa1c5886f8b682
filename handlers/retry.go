package handlers

import (
	"time"

	"github.com/authkit-go/authkit/internal/oauthclient"
)

// RetryPolicy decides whether a failed request to the provider is sent
// again, and after how long (see OAuthConfig.Retry). attempt counts the
// attempts made so far, from 1; status is the HTTP status (429 or 5xx), or
// 0 after a network error err; retryAfter is the server's Retry-After, or
// 0. It is consulted only for network errors, 429 and 5xx answers: an
// OAuth error answer and the device flow's authorization_pending and
// slow_down are never retried.
type RetryPolicy = oauthclient.RetryPolicy

// DefaultRetry is the policy of an OAuthConfig without Retry: up to 4
// attempts in all, waiting 0.5 s doubled per attempt up to 8 s, each wait
// drawn from its upper half (jitter); a Retry-After is honoured up to 30 s.
func DefaultRetry(attempt, status int, retryAfter time.Duration, err error) (wait time.Duration, retry bool) {
	return oauthclient.DefaultRetry(attempt, status, retryAfter, err)
}

// NoRetry never sends a request again.
func NoRetry(attempt, status int, retryAfter time.Duration, err error) (wait time.Duration, retry bool) {
	return 0, false
}
