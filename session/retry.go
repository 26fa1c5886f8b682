package session

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/authkit-go/authkit/internal/backoff"
	"github.com/hashicorp/go-retryablehttp"
)

// RetryPolicy decides whether an attempt that ended with resp (or err) is
// worth another one. It is consulted only for requests that may be retried
// at all; ctx cancellation and [*CredentialError] are handled before it.
type RetryPolicy func(resp *http.Response, err error) bool

// Backoff returns how long to wait before the attempt after attempt
// (counted from 0), given the response that failed (nil after a network
// error). min and max are [Config.RetryWaitMin] and [Config.RetryWaitMax];
// the session never waits longer than max, whatever Backoff returns.
type Backoff func(min, max time.Duration, attempt int, resp *http.Response) time.Duration

// retryStatus are the statuses DefaultRetryPolicy retries. 501 Not
// Implemented is not among them: it will not change.
var retryStatus = [...]int{
	http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
	http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout,
}

// DefaultRetryPolicy retries network errors (except those that will not
// change: too many redirects, an unsupported scheme, an invalid header, an
// untrusted certificate) and the statuses 408, 429, 500, 502, 503 and 504.
func DefaultRetryPolicy(resp *http.Response, err error) bool {
	if err != nil {
		// go-retryablehttp knows which transport errors are permanent.
		retry, _ := retryablehttp.ErrorPropagatedRetryPolicy(context.Background(), nil, err)
		return retry
	}
	if resp == nil {
		return false
	}
	for _, s := range retryStatus {
		if resp.StatusCode == s {
			return true
		}
	}
	return false
}

// DefaultBackoff waits as the response's Retry-After header says (delay in
// seconds or an HTTP date, https://www.rfc-editor.org/rfc/rfc9110#section-10.2.3,
// a date measured against the response's Date header), capped at max.
// Otherwise it waits min·2^attempt, capped at max, drawn at random from the
// upper half of that span (jitter), so that clients that failed together
// do not retry together.
func DefaultBackoff(min, max time.Duration, attempt int, resp *http.Response) time.Duration {
	if resp != nil {
		if d, ok := backoff.RetryAfter(resp.Header.Get("Retry-After"), resp.Header.Get("Date"), time.Now(), max); ok {
			return d
		}
	}
	return backoff.Delay(attempt+1, min, max)
}

// clampWait keeps a wait that a Backoff returned within [0, max].
func clampWait(d, limit time.Duration) time.Duration {
	return min(max(d, 0), limit)
}

// idempotent reports whether a request may be retried by its method
// (https://www.rfc-editor.org/rfc/rfc9110#section-9.2.2), its Idempotency-Key
// header, or a mark set by Retryable.
func idempotent(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete:
		return true
	}
	if _, ok := req.Header["Idempotency-Key"]; ok {
		return true
	}
	if _, ok := req.Header["X-Idempotency-Key"]; ok {
		return true
	}
	return req.Context().Value(retryableKey{}) != nil
}

// rewindable reports whether req's body can be sent again.
func rewindable(req *http.Request) bool {
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

type retryableKey struct{}

// Retryable returns a shallow copy of req marked as safe to retry even
// though its method is not idempotent (a POST whose server deduplicates, say).
// The body must still be rewindable: http.NewRequest sets GetBody for
// *bytes.Buffer, *bytes.Reader and *strings.Reader bodies.
func Retryable(req *http.Request) *http.Request {
	return req.WithContext(context.WithValue(req.Context(), retryableKey{}, true))
}

// permanent reports errors that no retry can fix.
func permanent(err error) bool {
	var ce *CredentialError
	return errors.As(err, &ce)
}
