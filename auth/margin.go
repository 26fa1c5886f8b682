package auth

import (
	"time"

	"github.com/authkit-go/authkit/internal/backoff"
)

// Margin decides when a token is refreshed, and so when it stops being
// served.
//
// A token is refreshed in the background once its refresh margin is all
// that is left of its lifetime. The zero value makes that margin 10 % of the
// lifetime, at least 1 second and at least twice the time the last fetch
// took, at most 5 minutes, and never more than half the lifetime: a 1-second
// token is refreshed after 0.5 s, a 1-minute token after 54 s, a 24-hour
// token 5 minutes before it expires. (golang.org/x/oauth2 refreshes 10 s
// before expiry by default, so it treats every token of 10 s or less as
// expired; ReuseTokenSourceWithExpiry changes that number.)
//
// A token stops being served a quarter of its refresh margin before it
// expires, at most 5 seconds before: room for the request that carries it
// to reach the service, and for clock skew. A token whose refresh fails is
// served until then, while the engine keeps retrying
// (TestEngineServesUntilFiveSecondsBeforeExpiry).
type Margin struct {
	// Fraction is the share of the lifetime; zero means 0.1.
	Fraction float64
	// Min is a floor for the margin (still capped at half the lifetime);
	// zero means 1 second, so that short tokens are refreshed early enough
	// for a slow fetch or a late timer not to stall readers.
	Min time.Duration
	// Max is a ceiling for the margin; zero means 5 minutes. Min = Max
	// gives a fixed margin (still widened to twice a slow fetch, and capped
	// at half the lifetime).
	Max time.Duration
}

// For returns the refresh margin of a token that is valid for lifetime, when
// the last fetch took fetchTook.
func (m Margin) For(lifetime, fetchTook time.Duration) time.Duration {
	f := m.Fraction
	if f <= 0 {
		f = 0.1
	}
	lo, hi := m.Min, m.Max
	if lo <= 0 {
		lo = time.Second
	}
	if hi <= 0 {
		hi = 5 * time.Minute
	}
	d := min(time.Duration(float64(lifetime)*f), hi)
	d = max(d, lo, 2*fetchTook)
	return max(min(d, lifetime/2), 0)
}

// serveMargin is how long before expiry a token whose refresh margin is
// refresh stops being served.
func serveMargin(refresh time.Duration) time.Duration {
	return min(refresh/4, 5*time.Second)
}

// Backoff spaces the attempts after failures: Min after the first, doubling
// up to Max, each wait drawn at random from its upper half (jitter). A
// server's Retry-After is honoured up to Max. The zero value means Min
// 250 ms and Max 1 minute.
//
// While a caller waits for the fetch (no token can be served), the waits
// double only up to 2 seconds (or Min, if that is longer): the long waits
// spare a failing provider while a valid token is served, but a caller's
// deadline is better spent on attempts than on waiting for a provider that
// may already answer again. A caller that arrives during a longer wait cuts
// it short. Retry-After is still honoured
// (TestEngineWaitingCallerIsNotBackedOffPastItsDeadline,
// TestEngineCallerArrivingDuringALongBackoffCutsItShort).
type Backoff struct {
	Min time.Duration
	Max time.Duration
}

func (b *Backoff) limits() (lo, hi time.Duration) {
	if b != nil {
		lo, hi = b.Min, b.Max
	}
	if lo <= 0 {
		lo = 250 * time.Millisecond
	}
	if hi <= 0 {
		hi = time.Minute
	}
	return lo, max(lo, hi)
}

// delay is the wait after n failures in a row (n from 1), or the server's
// retryAfter when it asks for longer, capped at Max.
func (b *Backoff) delay(n int, retryAfter time.Duration) time.Duration {
	lo, hi := b.limits()
	return min(max(backoff.Delay(n, lo, hi), retryAfter), hi)
}

// waitingMax caps the waits while callers wait for a fetch.
const waitingMax = 2 * time.Second

// waitingDelay is delay while a caller waits: capped at waitingMax (or
// Min, if that is longer), except for the server's retryAfter.
func (b *Backoff) waitingDelay(n int, retryAfter time.Duration) time.Duration {
	lo, hi := b.limits()
	return min(max(backoff.Delay(n, lo, min(max(lo, waitingMax), hi)), retryAfter), hi)
}
