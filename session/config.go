package session

import (
	"log/slog"
	"net/http"
	"time"
)

// Defaults of [Config].
const (
	DefaultMaxRetries     = 3
	DefaultRetryWaitMin   = 500 * time.Millisecond
	DefaultRetryWaitMax   = 30 * time.Second
	DefaultAttemptTimeout = 20 * time.Second
)

// Config configures a [Session]. At least one of HubURL and
// AccessManagerURL is required; every other zero value means the default
// documented on the field.
type Config struct {
	// HubURL is the base URL of the hub, e.g. "https://hub.example.com/api".
	// Requests with the same scheme, host and port and a path under its
	// path get the handler's hub headers.
	HubURL string
	// AccessManagerURL is the base URL of the access manager, under the
	// same rule. When both URLs match a request, the longer path wins; the
	// two URLs must not be equal.
	AccessManagerURL string

	// Transport sends the requests. Nil means a pooled transport of its
	// own (go-cleanhttp's), closed by Close.
	Transport http.RoundTripper
	// CheckRedirect is the redirect policy, as in http.Client; nil means
	// net/http's (at most 10 hops). Credentials are decided again for each
	// hop whatever the policy. A retry repeats the whole redirect chain.
	CheckRedirect func(req *http.Request, via []*http.Request) error

	// MaxRetries is how many times a failed attempt is retried; zero means
	// DefaultMaxRetries (3), negative is an error. See DisableRetries.
	MaxRetries int
	// DisableRetries sends every request once (the 401 replay still runs).
	DisableRetries bool
	// RetryWaitMin is the first backoff; zero means DefaultRetryWaitMin.
	RetryWaitMin time.Duration
	// RetryWaitMax caps every wait, Retry-After included; zero means
	// DefaultRetryWaitMax.
	RetryWaitMax time.Duration
	// RetryPolicy says which failures are retried; nil means DefaultRetryPolicy.
	RetryPolicy RetryPolicy
	// Backoff says how long to wait; nil means DefaultBackoff.
	Backoff Backoff
	// AttemptTimeout bounds each attempt, redirects included, from sending
	// the request to closing the response body; an attempt that runs out of
	// time is retried like a network error. Zero means
	// DefaultAttemptTimeout (20 s), negative means none. The request's ctx
	// always applies as well, backoff waits included; when its deadline
	// comes first, it alone bounds the attempt. The bound is AttemptTimeout
	// plus at most a 64th of it: attempts that start close together share
	// one timer, so that the timeout costs nothing per request.
	AttemptTimeout time.Duration

	// UserAgent is sent by requests that carry no User-Agent of their own;
	// empty means auth.DefaultUserAgent.
	UserAgent string
	// Logger receives one debug record per attempt and info records for
	// retries and re-authentication; nil means silent.
	Logger *slog.Logger

	// DangerousAllowInsecureHTTP lets HubURL and AccessManagerURL use plain
	// http:// to hosts that are not loopback addresses. Their credentials
	// then cross the network in clear text, readable and replayable by
	// anyone on the path. Use it only on a network you trust completely;
	// http://localhost and http://127.0.0.1 never need it.
	DangerousAllowInsecureHTTP bool
}
