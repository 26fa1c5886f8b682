// Package jwks verifies JWTs with keys from a remote JWK Set
// (https://www.rfc-editor.org/rfc/rfc7517#section-5) and/or static keys.
//
// A [KeySet] fetches on demand, one fetch at a time, like go-oidc's
// RemoteKeySet: the fetch runs on the KeySet's own lifetime (an
// internal/flight Group), each caller waits for it only as long as its own
// ctx allows, and the lock is never held during I/O. A [Verifier] checks a
// token's signature with those keys, accepting only allow-listed
// algorithms whose key type matches.
//
// Key rotation: providers sign with a new key the moment they publish it,
// so the first token naming a kid the cached set lacks refetches the set at
// once, even if it was fetched a moment ago, and waits for that fetch.
// Further unknown-kid refetches are rate-limited to one per
// [Config.UnknownKidRefresh] (10 s by default), so a flood of tokens with
// made-up kids costs at most one fetch per window; a kid the limit refuses
// fails at once with [ErrUnknownKey]. A fetch that fails keeps the keys
// already known.
package jwks

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/internal/flight"
)

// Config configures a [KeySet]. URL is required; the zero value of every
// other field is a documented default.
type Config struct {
	// URL is the JWK Set's address. The caller has already checked that it
	// is https, or http to a loopback address.
	URL string
	// HTTPClient fetches the set; nil means a client of its own with a 30 s
	// timeout. Whatever the client, redirects from https to another scheme
	// are refused and at most 10 redirects are followed. A client without
	// a timeout gets one of 30 s per fetch.
	HTTPClient *http.Client
	// Clock is the clock of the keys' freshness; nil means
	// auth.SystemClock().
	Clock auth.Clock
	// UserAgent is sent as User-Agent; empty means auth.DefaultUserAgent.
	UserAgent string
	// TTL is how long a fetched set is used before a use refetches it;
	// zero means 1 hour. The stale set keeps serving the kids it has while
	// the refetch runs, and after it fails.
	TTL time.Duration
	// MinRefresh is the least time between the start of the latest fetch
	// (of any kind) and a fetch that a TTL expiry asks for, so that a
	// failing endpoint is retried at most that often; zero means 1 minute.
	// Before any set was fetched, a failed fetch is retried after
	// min(MinRefresh, 1 s). It does not delay the fetches that unknown kids
	// ask for: see UnknownKidRefresh.
	MinRefresh time.Duration
	// UnknownKidRefresh is the least time between two fetches asked for by
	// tokens naming a kid the cached set lacks; zero means 10 s. Only those
	// fetches count: the first unknown kid after a fetch of another kind
	// (the first fetch, a TTL refetch) refetches at once, so a key added by
	// a rotation verifies on its first use. While the limit refuses, an
	// unknown kid fails at once with ErrUnknownKey (ErrKeysUnavailable if
	// the latest fetch failed).
	UnknownKidRefresh time.Duration
	// Logger receives the failures of fetches (status and reason, never
	// the body); nil means silent.
	Logger *slog.Logger
}

// fetchTimeout bounds a fetch when the HTTP client has no timeout.
const fetchTimeout = 30 * time.Second

// KeySet is a remote JWK Set (https://www.rfc-editor.org/rfc/rfc7517#section-5)
// fetched on demand and cached. It is safe for concurrent use. Close it to
// end a fetch in flight.
type KeySet struct {
	url       string // as configured
	ua        string
	safeURL   string // for errors: no user information, query or fragment
	client    *http.Client
	ownClient bool // client was made here; Close closes its idle connections
	clock     auth.Clock
	ttl       time.Duration
	minGap    time.Duration // MinRefresh
	kidGap    time.Duration // UnknownKidRefresh
	log       *slog.Logger

	group flight.Group[struct{}, struct{}] // the fetch in flight; Close ends it

	mu          sync.Mutex // guards the fields below
	cur         *keys      // newest set fetched, nil before the first
	fetching    bool       // a fetch is in flight
	started     uint64     // fetches started so far
	finished    uint64     // fetches ended so far; one runs at a time, so they end in order
	lastAttempt time.Time  // start of the latest fetch
	lastKid     time.Time  // start of the latest fetch an unknown kid asked for
	kidAsked    bool       // an unknown kid has asked for a fetch; lastKid is set
	lastErr     error      // error of the latest fetch, nil if it succeeded
	closed      bool
}

// NewKeySet validates cfg and returns a KeySet. It does no I/O and starts
// no goroutine: the first lookup fetches.
func NewKeySet(cfg Config) (*KeySet, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, auth.ConfigError("jwks: URL %q is not an absolute http(s) URL", cfg.URL)
	}
	if cfg.TTL < 0 || cfg.MinRefresh < 0 || cfg.UnknownKidRefresh < 0 {
		return nil, auth.ConfigError("jwks: TTL, MinRefresh and UnknownKidRefresh must not be negative")
	}
	safe := *u
	safe.User, safe.RawQuery, safe.Fragment, safe.RawFragment = nil, "", "", ""
	s := &KeySet{url: cfg.URL, ua: cfg.UserAgent, safeURL: safe.String(), clock: cfg.Clock, ttl: cfg.TTL, minGap: cfg.MinRefresh, kidGap: cfg.UnknownKidRefresh, log: cfg.Logger}
	if s.ua == "" {
		s.ua = auth.DefaultUserAgent
	}
	if s.clock == nil {
		s.clock = auth.SystemClock()
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.ttl = cmp.Or(s.ttl, time.Hour)
	s.minGap = cmp.Or(s.minGap, time.Minute)
	s.kidGap = cmp.Or(s.kidGap, 10*time.Second)
	if cfg.HTTPClient == nil {
		s.client = &http.Client{Timeout: fetchTimeout, Transport: http.DefaultTransport.(*http.Transport).Clone()}
		s.ownClient = true
	} else {
		c := *cfg.HTTPClient
		s.client = &c
	}
	s.client.CheckRedirect = noDowngrade(s.client.CheckRedirect)
	s.group.Timeout = fetchTimeout
	if s.client.Timeout > 0 {
		s.group.Timeout = s.client.Timeout
	}
	return s, nil
}

// Close cancels the fetch in flight and waits for it to return; afterwards
// lookups fail with errClosed. Calling Close again does nothing.
func (s *KeySet) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.group.Close()
	if s.ownClient {
		s.client.CloseIdleConnections()
	}
	return nil
}

// lookup returns the keys for kid (every key of the set when kid is empty).
// A set that has kid serves it at once, even while a refetch runs, and
// starts a refetch in the background when it is older than the TTL (see
// ttlDueLocked). Otherwise the caller waits, as long as ctx allows, for the
// fetch in flight, or for one it starts if kidDueLocked allows. A fetch
// that was already in flight when the caller came may predate the key, so
// if it lacks kid the caller may start one more; once a fetch started
// after the caller came has ended, the caller has its answer. So a caller
// waits for at most two fetches, and returns at once when the rate limit
// refuses it and nothing is in flight.
func (s *KeySet) lookup(ctx context.Context, kid string) ([]jwk, error) {
	s.mu.Lock()
	came := s.started // a fetch numbered above this started after the caller came
	for {
		if s.closed {
			s.mu.Unlock()
			return nil, errClosed
		}
		now := s.clock.Now()
		if found, ok := s.cur.find(kid); ok {
			if !s.fetching && s.ttlDueLocked(now) {
				s.startLocked(now, false)
			}
			s.mu.Unlock()
			return found, nil
		}
		if s.finished > came { // a fetch newer than the caller ended without kid
			err := s.missingLocked(kid)
			s.mu.Unlock()
			return nil, err
		}
		if !s.fetching {
			if !s.kidDueLocked(now) {
				err := s.missingLocked(kid)
				s.mu.Unlock()
				return nil, err
			}
			s.startLocked(now, s.cur != nil)
		}
		s.mu.Unlock()
		if _, err, _ := s.group.Wait(ctx, struct{}{}); err != nil {
			return nil, fmt.Errorf("%w: stopped waiting for %s: %w", ErrKeysUnavailable, s.safeURL, context.Cause(ctx))
		}
		s.mu.Lock()
	}
}

// ttlDueLocked reports whether a set that has the kid asked for should be
// refetched now: it is older than the TTL and the latest fetch of any kind
// started MinRefresh ago or more.
func (s *KeySet) ttlDueLocked(now time.Time) bool {
	return now.Sub(s.cur.fetched) >= s.ttl && now.Sub(s.lastAttempt) >= s.minGap
}

// kidDueLocked reports whether a kid the cached set lacks may start a fetch
// now: with no set yet, when the latest fetch started min(MinRefresh, 1 s)
// ago or more; otherwise when the latest fetch that an unknown kid asked for
// started UnknownKidRefresh ago or more (or never happened).
func (s *KeySet) kidDueLocked(now time.Time) bool {
	if s.cur == nil {
		return s.started == 0 || now.Sub(s.lastAttempt) >= min(s.minGap, time.Second)
	}
	return !s.kidAsked || now.Sub(s.lastKid) >= s.kidGap
}

// missingLocked is the error for a kid the cached set lacks: the latest
// fetch's failure if it failed, else ErrUnknownKey.
func (s *KeySet) missingLocked(kid string) error {
	if s.lastErr != nil {
		return fmt.Errorf("%w: %s: %w", ErrKeysUnavailable, s.safeURL, s.lastErr)
	}
	return fmt.Errorf("%w: %s has no key %.64q", ErrUnknownKey, s.safeURL, kid)
}

// startLocked starts a fetch in the group; fetching is true until it ends.
// forKid says an unknown kid asked for it, which counts against
// UnknownKidRefresh.
func (s *KeySet) startLocked(now time.Time, forKid bool) {
	s.fetching, s.lastAttempt = true, now
	s.started++
	if forKid {
		s.lastKid, s.kidAsked = now, true
	}
	s.group.Start(struct{}{}, func(ctx context.Context) (struct{}, error) {
		set, err := s.fetch(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("jwks: fetching the JWK Set failed", "url", s.safeURL, "error", err)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if err == nil {
			set.fetched = now
			s.cur = set
		}
		s.lastErr = err
		s.fetching = false
		s.finished++
		return struct{}{}, nil // the result is in s.cur and s.lastErr
	})
}
