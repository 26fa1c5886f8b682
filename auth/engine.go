package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// FetchFunc obtains a token. current is the latest token the engine holds
// (possibly expired, possibly rejected by a service, possibly loaded from the
// store), or nil; the grant decides whether to use its refresh token or run
// the full grant. ctx is the engine's, bounded by EngineConfig.FetchTimeout,
// never a caller's.
type FetchFunc func(ctx context.Context, current *Token) (*Token, error)

// Margin decides how long before expiry a token is refreshed.
//
// The zero value refreshes when 10 % of the token's remaining lifetime is
// left, at most 5 minutes before expiry, and never later than twice the time
// the last fetch took. The margin never exceeds half the lifetime, so a
// 1-second token is refreshed after 0.9 s and a 24-hour token 5 minutes
// before it expires (golang.org/x/oauth2 instead treats every token of 10 s
// or less as expired).
type Margin struct {
	// Fraction is the share of the lifetime; zero means 0.1.
	Fraction float64
	// Min is a floor for the margin (still capped at half the lifetime).
	Min time.Duration
	// Max is a ceiling for the margin; zero means 5 minutes.
	Max time.Duration
	// Fixed, when positive, is used instead of Fraction, Min and Max.
	Fixed time.Duration
}

// For returns the margin for a token that is valid for lifetime, when the
// last fetch took fetchTook.
func (m Margin) For(lifetime, fetchTook time.Duration) time.Duration {
	var d time.Duration
	if m.Fixed > 0 {
		d = m.Fixed
	} else {
		f := m.Fraction
		if f <= 0 {
			f = 0.1
		}
		d = time.Duration(float64(lifetime) * f)
		limit := m.Max
		if limit <= 0 {
			limit = 5 * time.Minute
		}
		d = min(d, limit)
		d = max(d, m.Min, 2*fetchTook)
	}
	return min(d, lifetime/2)
}

// Backoff spaces the fetches after failures: Min after the first, doubling
// up to Max, each wait drawn at random from its upper half (jitter). The
// zero value means Min 1 s and Max 1 minute.
type Backoff struct {
	Min time.Duration
	Max time.Duration
}

func (b Backoff) delay(failures int) time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = time.Second
	}
	if hi <= 0 {
		hi = time.Minute
	}
	d := lo
	for i := 1; i < failures && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d/2 + rand.N(d/2+1)
}

// EngineConfig configures an [Engine]. Only Fetch is required.
type EngineConfig struct {
	// Fetch obtains a token. Required.
	Fetch FetchFunc
	// Prepare turns a token into the credentials of each service. Nil
	// means Wire.Bearer.
	Prepare func(*Token) (*Credentials, error)
	// Wire names headers and metadata when Prepare is nil.
	Wire Wire
	// Margin decides when a token is refreshed; see [Margin].
	Margin Margin
	// Backoff spaces fetches after failures; see [Backoff].
	Backoff Backoff
	// FetchTimeout bounds one fetch, which runs on the engine's own
	// lifetime. Zero means 2 minutes; negative means no bound.
	FetchTimeout time.Duration
	// Clock is the source of time; nil means SystemClock().
	Clock Clock
	// Store keeps tokens between runs; nil means none (memory only).
	Store Store
	// StoreKey is the key of this engine's token in Store.
	StoreKey StoreKey
	// Initial is a token to start with, used while valid.
	Initial *Token
	// Logger receives debug and warning records; nil means silent.
	Logger *slog.Logger
}

// Stats counts what an engine did.
type Stats struct {
	// Fetches counts calls of the fetch function.
	Fetches int64
	// Refreshes counts the fetches started early, in the background,
	// while the current token was still valid.
	Refreshes int64
	// Failures counts fetches that returned an error.
	Failures int64
	// StoreHits counts tokens taken from the store instead of fetching.
	StoreHits int64
	// Invalidations counts accepted calls of Invalidate.
	Invalidations int64
	// Waits counts callers that found no valid credentials and waited for
	// a fetch (or got the last fetch's error).
	Waits int64
}

// Engine is the token lifecycle shared by every OAuth grant: it caches the
// credentials, refreshes them in the background before they expire, lets one
// fetch run at a time, serves the valid token while an early refresh fails,
// backs off after failures, persists tokens and drops them after a service
// rejected them. It is safe for concurrent use.
//
// An Engine provides the getter half of [AuthenticationHandler]
// (HubRequestHeaders, AccessManagerRequestHeaders, MessageServiceMetadata)
// and [Invalidator]; handlers embed it and add Authenticate, Authenticated
// and Username.
type Engine struct {
	cfg     EngineConfig
	clock   Clock
	log     *slog.Logger
	prepare func(*Token) (*Credentials, error)

	// cur is the hot path: the prepared credentials while they are valid,
	// nil otherwise. Timers clear it at expiry.
	cur atomic.Pointer[entry]

	ctx    context.Context // the engine's lifetime; fetches run on it
	cancel context.CancelFunc
	wg     sync.WaitGroup // background fetches

	mu        sync.Mutex // guards the fields below
	closed    bool
	tok       *Token     // latest token, even when expired or rejected
	rejected  string     // access token a service rejected
	call      *fetchCall // the fetch in flight, if any
	timers    []Timer    // refresh and expiry timers of the current token
	gen       uint64     // changes with every installed or dropped token
	failures  int        // consecutive failed fetches
	lastErr   error      // error of the last failed fetch
	retryAt   time.Time  // no fetch for waiters before this, after a failure
	fetchTook time.Duration
	stats     Stats
}

type entry struct {
	creds  *Credentials
	margin time.Duration
}

type fetchCall struct {
	done  chan struct{}
	creds *Credentials
	err   error
}

// NewEngine validates cfg and returns an engine. Close it when done.
func NewEngine(cfg EngineConfig) (*Engine, error) {
	if cfg.Fetch == nil {
		return nil, configError("EngineConfig.Fetch is required")
	}
	if cfg.Margin.Fraction < 0 || cfg.Margin.Fraction >= 1 {
		return nil, configError("Margin.Fraction must be in [0, 1), got %v", cfg.Margin.Fraction)
	}
	if cfg.Margin.Min < 0 || cfg.Margin.Max < 0 || cfg.Margin.Fixed < 0 {
		return nil, configError("Margin durations must not be negative")
	}
	if cfg.Backoff.Min < 0 || cfg.Backoff.Max < 0 || (cfg.Backoff.Max > 0 && cfg.Backoff.Min > cfg.Backoff.Max) {
		return nil, configError("Backoff needs 0 <= Min <= Max")
	}
	if err := cfg.Wire.Validate(); err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, clock: cfg.Clock, log: cfg.Logger, prepare: cfg.Prepare}
	if e.clock == nil {
		e.clock = SystemClock()
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.prepare == nil {
		e.prepare = cfg.Wire.Bearer
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	if cfg.Initial != nil {
		creds, err := e.prepare(cfg.Initial)
		if err != nil {
			return nil, err
		}
		e.mu.Lock()
		e.installLocked(cfg.Initial, creds)
		e.mu.Unlock()
	}
	return e, nil
}

// Credentials returns the prepared credentials, fetching them when none are
// valid. While a token is valid this is one atomic load. Otherwise the caller
// waits for the one fetch in flight (starting it if needed) for as long as
// ctx allows; giving up does not cancel the fetch, which others may share.
// The result is shared and read-only.
func (e *Engine) Credentials(ctx context.Context) (*Credentials, error) {
	if c := e.cur.Load(); c != nil {
		return c.creds, nil
	}
	return e.wait(ctx)
}

// HubRequestHeaders returns the hub's headers; see [AuthenticationHandler].
func (e *Engine) HubRequestHeaders(ctx context.Context) (http.Header, error) {
	if c := e.cur.Load(); c != nil {
		return c.creds.Hub, nil
	}
	creds, err := e.wait(ctx)
	if err != nil {
		return nil, err
	}
	return creds.Hub, nil
}

// AccessManagerRequestHeaders returns the access manager's headers; see
// [AuthenticationHandler].
func (e *Engine) AccessManagerRequestHeaders(ctx context.Context) (http.Header, error) {
	if c := e.cur.Load(); c != nil {
		return c.creds.AccessManager, nil
	}
	creds, err := e.wait(ctx)
	if err != nil {
		return nil, err
	}
	return creds.AccessManager, nil
}

// MessageServiceMetadata returns the message service's gRPC metadata; see
// [AuthenticationHandler].
func (e *Engine) MessageServiceMetadata(ctx context.Context) (map[string]string, error) {
	if c := e.cur.Load(); c != nil {
		return c.creds.MessageService, nil
	}
	creds, err := e.wait(ctx)
	if err != nil {
		return nil, err
	}
	return creds.MessageService, nil
}

// Token returns a copy of the current valid token, fetching one if needed
// (see Credentials). It is nil for credentials that are not tokens.
func (e *Engine) Token(ctx context.Context) (*Token, error) {
	creds, err := e.Credentials(ctx)
	if err != nil {
		return nil, err
	}
	return creds.Token.Clone(), nil
}

// Valid reports whether the engine holds credentials that are valid now
// with the refresh margin to spare. It performs no I/O.
func (e *Engine) Valid() bool {
	c := e.cur.Load()
	if c == nil {
		return false
	}
	return c.creds.Expiry.IsZero() || e.clock.Now().Add(c.margin).Before(c.creds.Expiry)
}

// Current returns a copy of the latest token the engine holds, valid or not,
// or nil. It performs no I/O.
func (e *Engine) Current() *Token {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.tok.Clone()
}

// Stats returns what the engine did so far.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats
}

// Invalidate drops the current credentials if rejected carries their access
// token (or rejected is empty), so that the next caller starts one new fetch.
// See [Invalidator].
func (e *Engine) Invalidate(rejected string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.tok == nil || e.tok.AccessToken == "" {
		return
	}
	if rejected != "" && !strings.Contains(rejected, e.tok.AccessToken) {
		return // an older credential, already replaced
	}
	e.rejected = e.tok.AccessToken
	e.dropLocked()
	e.failures, e.lastErr, e.retryAt = 0, nil, time.Time{}
	e.stats.Invalidations++
	e.log.Debug("auth: credential rejected by a service; the next use fetches a new one")
}

// Set installs a token obtained outside the engine (by an interactive login,
// say), saves it to the store and serves it from now on.
func (e *Engine) Set(ctx context.Context, tok *Token) error {
	if tok == nil {
		return fmt.Errorf("%w: nil token", ErrMalformedToken)
	}
	creds, err := e.prepare(tok)
	if err != nil {
		return err
	}
	if err := e.save(ctx, tok); err != nil {
		e.log.Warn("auth: token not saved", "error", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	e.installLocked(tok, creds)
	return nil
}

// Forget drops the credentials and deletes the stored token: the logout.
func (e *Engine) Forget(ctx context.Context) error {
	e.mu.Lock()
	e.dropLocked()
	e.tok = nil
	e.mu.Unlock()
	if e.cfg.Store == nil {
		return nil
	}
	if l, ok := e.cfg.Store.(Locker); ok {
		// Under the lock, so that another process's refresh cannot save the
		// token again right after the logout.
		unlock, err := l.Lock(ctx, e.cfg.StoreKey)
		if err != nil {
			return fmt.Errorf("auth: lock token store: %w", err)
		}
		defer unlock()
	}
	return e.cfg.Store.Delete(ctx, e.cfg.StoreKey)
}

// Close stops the background work and waits for it to end. Calls after Close
// return ErrClosed.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.dropLocked()
	e.cancel()
	e.mu.Unlock()
	e.wg.Wait()
	return nil
}

// wait is the slow path: join or start the fetch and wait for it.
func (e *Engine) wait(ctx context.Context) (*Credentials, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, ErrClosed
	}
	if c := e.cur.Load(); c != nil {
		e.mu.Unlock()
		return c.creds, nil
	}
	e.stats.Waits++
	call := e.call
	if call == nil {
		if e.lastErr != nil && e.clock.Now().Before(e.retryAt) {
			err := e.lastErr
			e.mu.Unlock()
			return nil, err
		}
		call = e.startFetchLocked(false)
	}
	e.mu.Unlock()
	select {
	case <-call.done:
		return call.creds, call.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (e *Engine) startFetchLocked(early bool) *fetchCall {
	call := &fetchCall{done: make(chan struct{})}
	e.call = call
	if early {
		e.stats.Refreshes++
	}
	current, gen, rejected := e.tok, e.gen, e.rejected
	e.wg.Add(1)
	go e.runFetch(call, current, gen, rejected)
	return call
}

func (e *Engine) runFetch(call *fetchCall, current *Token, gen uint64, rejected string) {
	defer e.wg.Done()
	ctx, cancel := e.ctx, context.CancelFunc(func() {})
	if e.cfg.FetchTimeout >= 0 {
		timeout := e.cfg.FetchTimeout
		if timeout == 0 {
			timeout = 2 * time.Minute
		}
		ctx, cancel = context.WithTimeout(e.ctx, timeout)
	}
	start := e.clock.Now()
	tok, creds, err := e.obtain(ctx, current, rejected)
	cancel()
	if err == nil && !tok.Expiry.IsZero() && !tok.Expiry.After(e.clock.Now()) {
		err = fmt.Errorf("%w: the new token expired at %s", ErrTokenExpired, tok.Expiry.UTC().Format(time.RFC3339))
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	e.call = nil
	if e.closed {
		err = ErrClosed
	}
	if err != nil {
		e.failedLocked(err, gen)
		call.err = e.lastErr
		if call.err == nil {
			call.err = err
		}
	} else {
		e.fetchTook = e.clock.Now().Sub(start)
		e.installLocked(tok, creds)
		call.creds = creds
	}
	close(call.done)
}

// obtain returns a token from the store or the fetch function, holding the
// store's cross-process lock (if any) around "reload, fetch, save".
func (e *Engine) obtain(ctx context.Context, current *Token, rejected string) (*Token, *Credentials, error) {
	store := e.cfg.Store
	if store != nil {
		if l, ok := store.(Locker); ok {
			unlock, err := l.Lock(ctx, e.cfg.StoreKey)
			if err != nil {
				return nil, nil, fmt.Errorf("auth: lock token store: %w", err)
			}
			defer unlock()
		}
		stored, err := store.Load(ctx, e.cfg.StoreKey)
		if err != nil {
			e.log.Warn("auth: token store unreadable; continuing without it", "error", err)
		}
		// A stored token other than our own and other than a rejected one
		// was saved by another process (or run) after ours: use it. Our own
		// token is what is being refreshed, so it never counts.
		foreign := stored != nil && stored.AccessToken != rejected &&
			(current == nil || stored.AccessToken != current.AccessToken)
		if foreign {
			now := e.clock.Now()
			lifetime := stored.Expiry.Sub(now)
			if stored.Expiry.IsZero() || stored.ValidAt(now, e.cfg.Margin.For(lifetime, 0)) {
				if creds, err := e.prepare(stored); err == nil {
					e.mu.Lock()
					e.stats.StoreHits++
					e.mu.Unlock()
					return stored, creds, nil
				}
			}
		}
		if stored != nil && stored.RefreshToken != "" {
			// Another process may have rotated the refresh token: ours is spent.
			current = stored
		}
	}
	e.mu.Lock()
	e.stats.Fetches++
	e.mu.Unlock()
	tok, err := e.cfg.Fetch(ctx, current.Clone())
	if err != nil {
		return nil, nil, err
	}
	if tok == nil || tok.AccessToken == "" {
		return nil, nil, fmt.Errorf("%w: the fetch returned no access token", ErrMalformedToken)
	}
	if rejected != "" && tok.AccessToken == rejected {
		// Serving it again would only earn another rejection per request;
		// the failure goes through the backoff instead.
		return nil, nil, ErrCredentialRejected
	}
	creds, err := e.prepare(tok)
	if err != nil {
		return nil, nil, err
	}
	if err := e.save(ctx, tok); err != nil {
		e.log.Warn("auth: token not saved; it stays in memory", "error", err)
	}
	return tok, creds, nil
}

func (e *Engine) save(ctx context.Context, tok *Token) error {
	if e.cfg.Store == nil {
		return nil
	}
	return e.cfg.Store.Save(ctx, e.cfg.StoreKey, tok)
}

// installLocked publishes tok and schedules its refresh and expiry.
func (e *Engine) installLocked(tok *Token, creds *Credentials) {
	e.stopTimersLocked()
	e.gen++
	gen := e.gen
	e.tok = tok
	e.failures, e.lastErr, e.retryAt = 0, nil, time.Time{}
	if tok.Expiry.IsZero() {
		e.cur.Store(&entry{creds: creds})
		return
	}
	lifetime := tok.Expiry.Sub(e.clock.Now())
	if lifetime <= 0 {
		e.cur.Store(nil)
		return
	}
	margin := e.cfg.Margin.For(lifetime, e.fetchTook)
	e.cur.Store(&entry{creds: creds, margin: margin})
	e.timers = append(e.timers,
		e.clock.AfterFunc(lifetime-margin, func() { e.refreshDue(gen) }),
		e.clock.AfterFunc(lifetime, func() { e.expired(gen) }),
	)
	e.log.Debug("auth: token installed", "expires_in", lifetime, "refresh_in", lifetime-margin)
}

// failedLocked records a failed fetch and schedules the next attempt.
func (e *Engine) failedLocked(err error, gen uint64) {
	e.stats.Failures++
	if e.gen != gen && e.cur.Load() != nil {
		return // a token was installed meanwhile (Set); this failure is moot
	}
	e.failures++
	if !errors.Is(err, ErrClosed) && !errors.Is(err, context.Canceled) {
		e.lastErr = err
	}
	d := e.cfg.Backoff.delay(e.failures)
	e.retryAt = e.clock.Now().Add(d)
	if e.cur.Load() != nil && !e.closed {
		// The current token is still valid: keep serving it, retry later.
		e.log.Warn("auth: early refresh failed; keeping the current token", "error", err, "retry_in", d)
		g := e.gen
		e.timers = append(e.timers, e.clock.AfterFunc(d, func() { e.refreshDue(g) }))
		return
	}
	if errors.Is(err, ErrLoginRequired) {
		// The normal start of an interactive login, not a failure to warn of.
		e.log.Debug("auth: no credential without a login", "error", err)
		return
	}
	e.log.Warn("auth: fetch failed", "error", err, "retry_in", d)
}

func (e *Engine) refreshDue(gen uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.gen != gen || e.closed || e.call != nil {
		return
	}
	e.startFetchLocked(e.cur.Load() != nil)
}

func (e *Engine) expired(gen uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.gen == gen {
		e.cur.Store(nil)
	}
}

// dropLocked unpublishes the credentials and cancels their timers.
func (e *Engine) dropLocked() {
	e.stopTimersLocked()
	e.gen++
	e.cur.Store(nil)
}

func (e *Engine) stopTimersLocked() {
	for _, t := range e.timers {
		t.Stop()
	}
	e.timers = e.timers[:0]
}
