package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/authkit-go/authkit/internal/backoff"
	"github.com/authkit-go/authkit/internal/jwtclaims"
)

// FetchFunc obtains a token. current is the latest token the engine holds
// (possibly expired, rejected by a service, or loaded from the store), or
// nil; the grant decides whether to spend its refresh token or run the full
// grant. ctx is the engine's own, bounded by EngineConfig.FetchTimeout and
// cancelled by Logout or Set, and by Close (after up to 5 s for a fetch
// that is spending a refresh token) — never a caller's. current carries no
// refresh token when a process that presented it stopped before saving the
// answer (see [ErrLoginLost]): a grant that can log in anew does so.
//
// A fetch returns as soon as it holds what the provider issued: checks that
// may fail afterwards (an ID token's signature, a pinned username) belong in
// EngineConfig.Check, which runs after the engine has saved the token, so
// that a refresh token the provider rotated is never lost.
//
// Failures for which [IsTransient] holds (network errors, 429, 5xx) are
// retried with backoff for as long as FetchTimeout and the callers allow;
// any other error ends the fetch and reaches the callers at once.
type FetchFunc func(ctx context.Context, current *Token) (*Token, error)

// CheckFunc inspects a token that a [FetchFunc] obtained, after the engine
// saved it: ID token verification, username pinning. It returns the
// identity it verified (zero when the token names nobody), which the
// engine records with the token in the store: a stored token that carries
// one is used without checking it again, and without the provider. tok
// carries the identity of the token it replaces, if known (see
// [Token.Identity]), so that a check can require the same subject.
//
// An error leaves the token held and saved — its refresh token is the one
// the next fetch spends — but not served. A transient error (JWKS
// unreachable) makes the engine run the check again, with backoff, without
// fetching again.
type CheckFunc func(ctx context.Context, tok *Token) (Identity, error)

// EngineConfig configures an [Engine]. Only Fetch is required.
type EngineConfig struct {
	// Fetch obtains a token. Required.
	Fetch FetchFunc
	// Check inspects each fetched token after it was saved; nil means none.
	Check CheckFunc
	// Wire names the headers and metadata that carry the token.
	Wire Wire
	// Margin decides when a token is refreshed and when it stops being
	// served; see [Margin].
	Margin Margin
	// Backoff spaces the attempts after failures; see [Backoff].
	Backoff Backoff
	// FetchTimeout bounds one fetch, its retries included. Zero means 2
	// minutes; negative means no bound.
	FetchTimeout time.Duration
	// RefreshIdle keeps refreshing in the background even while nobody
	// reads the credentials. By default an engine whose token was not read
	// since the last refresh does not refresh it again: the next read does
	// (serving the token meanwhile, or waiting once it expired), so that an
	// idle command-line tool or service does not rotate its refresh token
	// forever. An engine with RefreshIdle must be closed: it refreshes for
	// as long as it is not.
	RefreshIdle bool
	// OnRejected, if set, is told when a service rejects the credential
	// being served (see Invalidate), even when the rejection is deferred:
	// a hint for whoever issues it. It runs in a goroutine of its own, one
	// call at a time: rejections that come while it runs are coalesced
	// into one more call, with the latest service.
	OnRejected func(svc Service)
	// Clock is the source of time; nil means SystemClock().
	Clock Clock
	// Store keeps tokens between runs; nil means none (memory only).
	Store Store
	// StoreKey is the key of this engine's token in Store.
	StoreKey StoreKey
	// Initial is a token to start with, served while valid.
	Initial *Token
	// Revoke, if set, revokes a token at its issuer (RFC 7009: the refresh
	// token, then the access token); [Engine.Logout] calls it for the
	// token it holds and for the stored one, under the store's lock,
	// before deleting the stored entry. Nil means a logout is local only.
	Revoke func(ctx context.Context, tok *Token) error
	// Logger receives debug, info and warning records, never a secret; nil
	// means silent.
	Logger *slog.Logger
	// Name names the engine to its Observer (the handler's kind, e.g.
	// "ClientCredentials"); empty means "engine".
	Name string
	// DPoPKey is the DPoP key of the handler (see [DPoPKey]): a stored
	// token bound to a key that the store could not keep (one in a KMS)
	// is served with this one when their thumbprints match. Nil means
	// none; the engine never adds a key to a token that has none.
	DPoPKey *DPoPKey
	// Observer receives what the engine does on its slow paths, for
	// telemetry (see package auth/otelauth for OpenTelemetry); nil means
	// nobody. A [ReadObserver] also has the engine count the reads it
	// serves from its cache.
	Observer Observer
}

// Stats counts what an engine did.
type Stats struct {
	// Fetches counts calls of the fetch function.
	Fetches int64
	// Refreshes counts the fetches started early, in the background,
	// while the current token was still valid.
	Refreshes int64
	// Failures counts failed attempts (fetches or checks), retried or not.
	Failures int64
	// StoreHits counts tokens taken from the store instead of fetching.
	StoreHits int64
	// Invalidations counts rejections that dropped the credentials.
	Invalidations int64
	// RejectionsDeferred counts rejections that did not drop the
	// credentials because they came too soon after the previous one; see
	// [Engine.Invalidate].
	RejectionsDeferred int64
	// Waits counts callers that found no valid credentials and waited for
	// a fetch (or got the last fetch's error).
	Waits int64
	// SaveFailures counts fetched tokens that could not be saved to the
	// store, retries included. Such a token stays in memory, is saved
	// first thing at the next refresh, and is never replaced by the
	// older stored one.
	SaveFailures int64
	// LostLogins counts stored logins found with the spend record of a
	// process that stopped before saving what the provider sent back:
	// their refresh token was not presented again (see [ErrLoginLost]).
	LostLogins int64
}

// Engine is the token lifecycle shared by every OAuth grant: it caches the
// credentials, refreshes them in the background before they expire, lets one
// fetch run at a time, retries transient failures while callers wait, serves
// the valid token while an early refresh fails, persists tokens, and bounds
// what services' rejections cost. It is safe for concurrent use.
//
// # State
//
// Everything a reader needs is one immutable value behind an atomic pointer:
// the prepared credentials, the wall-clock times at which a refresh is due
// and at which the token stops being served, and a login epoch. A read is
// that load plus a comparison with the wall clock, so a machine that slept
// past the expiry never sends the dead token: validity does not depend on a
// timer having fired. Every change — a fetch's result, a login (Set), a
// logout (Logout), Close — installs a new value through one path that
// checks the epoch: a fetch that started before a login or a logout can
// neither install nor save its token.
//
// # Refresh
//
// The first read past the refresh time starts one background refresh and
// keeps getting the still valid token; a timer does the same for an engine
// that was read since its last refresh (an idle engine stops refreshing,
// see EngineConfig.RefreshIdle). Callers that find no valid token share one
// fetch, each waiting only as long as its own ctx allows. Transient failures
// are retried with backoff within that fetch; terminal ones reach every
// waiter at once and later callers fail fast until the backoff has passed.
//
// An Engine provides the getter half of [AuthenticationHandler]
// (HubRequestHeaders, AccessManagerRequestHeaders, MessageServiceMetadata)
// and [Invalidator].
type Engine struct {
	st          atomic.Pointer[state] // never nil
	fast        bool                  // the clock is the system clock: read coarseNow
	refreshIdle bool
	notifying   atomic.Bool // an onRejected goroutine runs

	fetch      FetchFunc
	check      CheckFunc
	wire       *Wire         // with defaults filled in; shared by every token
	margin     *Margin       // nil: the zero Margin
	backoff    *Backoff      // nil: the zero Backoff (a pointer keeps a handler small)
	timeout    time.Duration // of one fetch; 0 means none
	onRejected func(Service)
	revoke     func(context.Context, *Token) error
	clock      Clock
	cust       *custody // nil without a store
	obs        *observing
	log        *slog.Logger
	sched      *scheduler // runs refreshDue when the current state is due
	schedIdx   int        // in sched's heap, or -1; guarded by sched.mu

	wg sync.WaitGroup // background fetches

	rejected atomic.Pointer[Service] // the latest rejection for onRejected

	mu           sync.Mutex // guards the fields below and every change of st
	call         *fetchCall // the fetch in flight, if any
	failures     int32      // terminal failures in a row
	dueOnArrival int32      // tokens in a row that were due for refresh on arrival
	lastErr      error      // the last terminal failure, served until retryAt
	retryAt      int64      // Unix ns
	fetchTook    time.Duration
	stats        Stats
}

// discardLogger is the logger of engines given none.
var discardLogger = slog.New(slog.DiscardHandler)

// never is a time that does not come.
const never = math.MaxInt64

// lastInstant is the last time a Unix nanosecond count can hold (2262).
var lastInstant = time.Unix(0, never)

// noExpiry reports whether t means "does not expire": zero, or too far
// ahead to count in Unix nanoseconds (year 9999 standing for "never").
func noExpiry(t time.Time) bool {
	return t.IsZero() || t.After(lastInstant)
}

// state is one immutable snapshot of the engine. Only read and kicked
// change, once each.
type state struct {
	epoch uint64 // login generation: Set and Logout start a new one (Close keeps it, so that a refresh at the provider still saves)
	// tok is the latest token: the source of the next refresh. It may be
	// expired, rejected by a service, or a token whose check failed, and
	// then differs from creds.Token.
	tok *Token
	// creds is what is served; nil when nothing may be.
	creds *Credentials
	// refreshAt and serveUntil are wall-clock Unix nanoseconds.
	refreshAt, serveUntil int64
	// quietUntil ends the window in which rejections of creds are
	// deferred (Unix ns; 0 for none).
	quietUntil int64
	// rejections counts the tokens in a row that services rejected right
	// after they were fetched.
	rejections int32
	closed     bool
	read       atomic.Bool  // a reader got creds
	kickedAt   atomic.Int64 // when a reader last asked for the refresh (Unix ns)
	// rej, when creds is nil because a service rejected them, says which.
	rej *rejection
}

// rejection is a service's rejection of an access token.
type rejection struct {
	access Secret
	by     Service
}

// fetchCall is one fetch in flight, with its retries. Waiters select on done.
type fetchCall struct {
	done       chan struct{}
	epoch      uint64
	rejections int32      // carried into the installed state
	rej        *rejection // what the fetch replaces, after a rejection
	cancel     context.CancelFunc

	// Set before done is closed. Neither set: the call was superseded by
	// a login or logout, and waiters look at the new state.
	creds *Credentials
	err   error

	// spending is true while a refresh token is at the provider: Close
	// lets such a fetch finish and save (see closeGrace).
	spending atomic.Bool

	last error // the last transient failure; guarded by Engine.mu

	// waiting is closed when the first caller waits for this fetch;
	// waited (guarded by Engine.mu) says it was.
	waiting chan struct{}
	waited  bool

	reason string // why it runs, for telemetry: refresh, expired, rejected
}

// errSuperseded ends a fetch whose login epoch has passed.
var errSuperseded = errors.New("auth: fetch superseded by a login or logout")

// NewEngine validates cfg and returns an engine. Close it to stop its
// background work early. An engine dropped without Close refreshes at most
// once more (unless RefreshIdle is set), and is then collected
// (TestEngineDroppedWithoutCloseIsCollected).
func NewEngine(cfg EngineConfig) (*Engine, error) {
	if cfg.Fetch == nil {
		return nil, configError("EngineConfig.Fetch is required")
	}
	if cfg.Margin.Fraction < 0 || cfg.Margin.Fraction >= 1 {
		return nil, configError("Margin.Fraction must be in [0, 1), got %v", cfg.Margin.Fraction)
	}
	if cfg.Margin.Min < 0 || cfg.Margin.Max < 0 {
		return nil, configError("Margin durations must not be negative")
	}
	if cfg.Margin.Max > 0 && cfg.Margin.Min > cfg.Margin.Max {
		return nil, configError("Margin needs Min <= Max, got %v > %v", cfg.Margin.Min, cfg.Margin.Max)
	}
	if cfg.Backoff.Min < 0 || cfg.Backoff.Max < 0 || (cfg.Backoff.Max > 0 && cfg.Backoff.Min > cfg.Backoff.Max) {
		return nil, configError("Backoff needs 0 <= Min <= Max")
	}
	if err := cfg.Wire.Validate(); err != nil {
		return nil, err
	}
	e := &Engine{
		fetch: cfg.Fetch, check: cfg.Check, wire: &defaultWire,
		refreshIdle: cfg.RefreshIdle, onRejected: cfg.OnRejected, revoke: cfg.Revoke, clock: cfg.Clock, log: cfg.Logger,
	}
	if cfg.Wire != (Wire{}) {
		w := cfg.Wire.WithDefaults()
		e.wire = &w
	}
	if cfg.Margin != (Margin{}) {
		e.margin = &cfg.Margin
	}
	e.schedIdx = -1
	switch {
	case cfg.FetchTimeout == 0:
		e.timeout = 2 * time.Minute
	case cfg.FetchTimeout > 0:
		e.timeout = cfg.FetchTimeout
	}
	if e.clock == nil {
		e.clock = SystemClock()
	}
	_, e.fast = e.clock.(systemClock)
	e.sched = systemScheduler
	if !e.fast {
		e.sched = &scheduler{clock: e.clock}
	}
	if e.log == nil {
		e.log = discardLogger
	}
	if cfg.Backoff != (Backoff{}) {
		b := cfg.Backoff
		e.backoff = &b
	}
	e.obs = newObserving(cfg.Observer, cfg.Name)
	if cfg.Store != nil {
		e.cust = newCustody(cfg.Store, cfg.StoreKey, e.clock, e.log, e.obs)
		e.cust.dpop = cfg.DPoPKey
	}
	e.st.Store(&state{})
	if cfg.Initial != nil {
		tok := cfg.Initial.Clone()
		capExpiry(tok)
		creds, err := e.prepareToken(tok)
		if err != nil {
			return nil, err
		}
		e.mu.Lock()
		next, err := e.newState(0, tok, creds, 0)
		if err != nil {
			next = &state{tok: tok} // expired: kept as the refresh source
		}
		e.setLocked(next)
		e.mu.Unlock()
	}
	e.obs.start()
	return e, nil
}

// load is the hot path: the credentials while they may be served, else nil.
// Past the refresh time it asks for one background refresh.
func (e *Engine) load() *Credentials {
	s := e.st.Load()
	c := s.creds
	if c == nil {
		return nil
	}
	var now int64
	if e.fast {
		now = coarseNow()
	} else {
		now = e.clock.Now().UnixNano()
	}
	if now >= s.serveUntil {
		return nil
	}
	if now-int64(kickRetry) >= s.refreshAt { // refreshAt may be never: no overflow
		// The scheduler's timer starts the refresh at refreshAt; readers
		// step in when it is late (a loaded machine), one per kickRetry:
		// the one that won may be preempted before it starts the fetch.
		if k := s.kickedAt.Load(); now-k >= int64(kickRetry) && s.kickedAt.CompareAndSwap(k, now) {
			e.kick(s)
		}
	}
	if !s.read.Load() {
		s.read.Store(true)
	}
	e.obs.served()
	return c
}

// Credentials returns the prepared credentials, fetching them when none may
// be served. While a token is valid this is one atomic load and a clock
// comparison. Otherwise the caller waits for the one fetch in flight
// (starting it if needed) for as long as ctx allows; giving up does not
// cancel the fetch, which others may share. The result is shared and
// read-only.
func (e *Engine) Credentials(ctx context.Context) (*Credentials, error) {
	if c := e.load(); c != nil {
		return c, nil
	}
	return e.wait(ctx)
}

// HubRequestHeaders returns the hub's headers; see [AuthenticationHandler].
func (e *Engine) HubRequestHeaders(ctx context.Context) (http.Header, error) {
	if c := e.load(); c != nil {
		return c.Hub(), nil
	}
	c, err := e.wait(ctx)
	if err != nil {
		return nil, err
	}
	return c.Hub(), nil
}

// AccessManagerRequestHeaders returns the access manager's headers; see
// [AuthenticationHandler].
func (e *Engine) AccessManagerRequestHeaders(ctx context.Context) (http.Header, error) {
	if c := e.load(); c != nil {
		return c.AccessManager(), nil
	}
	c, err := e.wait(ctx)
	if err != nil {
		return nil, err
	}
	return c.AccessManager(), nil
}

// MessageServiceMetadata returns the message service's gRPC metadata; see
// [AuthenticationHandler].
func (e *Engine) MessageServiceMetadata(ctx context.Context) (map[string]string, error) {
	if c := e.load(); c != nil {
		return c.MessageService(), nil
	}
	c, err := e.wait(ctx)
	if err != nil {
		return nil, err
	}
	return c.MessageService(), nil
}

// Token returns a copy of the token being served, fetching one if needed
// (see Credentials). It is nil for credentials that are not tokens.
func (e *Engine) Token(ctx context.Context) (*Token, error) {
	c, err := e.Credentials(ctx)
	if err != nil {
		return nil, err
	}
	return c.Token.Clone(), nil
}

// Valid reports whether the engine holds credentials that are valid now
// with the refresh margin to spare. It reads the precise clock and performs
// no I/O.
func (e *Engine) Valid() bool {
	s := e.st.Load()
	now := e.clock.Now().UnixNano()
	// After a failed early refresh, the retry may be set past serveUntil.
	return s.creds != nil && now < s.refreshAt && now < s.serveUntil
}

// Current returns a copy of the latest token the engine holds, valid or not,
// or nil. It performs no I/O.
func (e *Engine) Current() *Token {
	return e.st.Load().tok.Clone()
}

// Stats returns what the engine did so far.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats
}

// Close stops the background work and waits for it to end. Calls after Close
// return ErrClosed. Close is not needed for correctness: it only ends the
// background work early.
//
// Close loses nothing the provider issued: a refresh whose refresh token is
// at the provider is given up to 5 seconds to finish and save its result
// (TestCustodyCloseSavesWhatTheProviderIssued); one that takes longer is
// cancelled and leaves its spend record in the store, so that no process
// presents that refresh token again (see [ErrLoginLost];
// TestCustodyCloseAbandonsASlowRefreshLeavingItsSpendRecord).
func (e *Engine) Close() error {
	e.mu.Lock()
	cur := e.st.Load()
	if cur.closed {
		e.mu.Unlock()
		return nil
	}
	call := e.call
	// Closed in the same login epoch: a refresh at the provider still
	// saves what it gets.
	e.setLocked(&state{epoch: cur.epoch, closed: true})
	if e.cust != nil {
		close(e.cust.closing)
	}
	e.mu.Unlock()
	if call != nil {
		if e.cust != nil && call.spending.Load() {
			t := time.NewTimer(closeGrace)
			select {
			case <-call.done:
			case <-t.C:
			}
			t.Stop()
		}
		call.cancel()
	}
	e.wg.Wait()
	if e.cust != nil {
		e.cust.close()
	}
	e.obs.close()
	return nil
}

// kickRetry is how late the scheduler's timer may be before readers ask for
// the refresh themselves, and how far apart their requests are. The timer
// is the better starter: its goroutine ends right after starting the
// fetch, which therefore runs at once, while a reader goes on running and
// the fetch it starts may wait behind every runnable goroutine.
const kickRetry = 20 * time.Millisecond

// kick starts a background refresh of s, unless s was replaced or a fetch
// runs already.
func (e *Engine) kick(s *state) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.st.Load() == s && e.call == nil && !s.closed {
		e.startLocked(s, true)
	}
}

// refreshDue is the timer's half of the refresh: it refreshes the current
// state if it is due and was read (or every state, with RefreshIdle).
func (e *Engine) refreshDue() {
	s := e.st.Load()
	if s.creds == nil || e.clock.Now().UnixNano() < s.refreshAt {
		return // a state that the timer was not set for
	}
	if !s.read.Load() && !e.refreshIdle {
		e.log.Debug("auth: credentials unused since the last refresh; the next use refreshes them")
		return
	}
	e.kick(s)
}

// wait is the slow path: join or start the fetch and wait for it.
func (e *Engine) wait(ctx context.Context) (_ *Credentials, err error) {
	counted := false
	var done func(error)
	defer func() {
		if done != nil {
			done(observedErr(err))
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		e.mu.Lock()
		s := e.st.Load()
		if s.closed {
			e.mu.Unlock()
			return nil, ErrClosed
		}
		now := e.clock.Now()
		if s.creds != nil && now.UnixNano() < s.serveUntil {
			// The coarse clock ran ahead of a token that is still valid.
			e.mu.Unlock()
			s.read.Store(true)
			e.obs.served()
			return s.creds, nil
		}
		first := !counted
		if first {
			e.stats.Waits++
			counted = true
		}
		call := e.call
		if call == nil {
			if e.lastErr != nil && now.UnixNano() < e.retryAt {
				err := e.lastErr
				e.mu.Unlock()
				return nil, err
			}
			call = e.startLocked(s, false)
		}
		if !call.waited {
			call.waited = true
			close(call.waiting)
		}
		e.mu.Unlock()
		if first { // outside the lock: an Observer may call back in
			done = e.obs.wait(ctx)
		}
		select {
		case <-call.done:
			if call.err != nil {
				return nil, call.err
			}
			if call.creds != nil {
				if s := e.st.Load(); s.creds == call.creds {
					s.read.Store(true)
				}
				return call.creds, nil
			}
			// Superseded by a login or a logout: look at the new state.
		case <-ctx.Done():
			e.mu.Lock()
			last := call.last
			e.mu.Unlock()
			if last != nil {
				return nil, fmt.Errorf("auth: gave up waiting for a token: %w; the last attempt failed: %w", ctx.Err(), last)
			}
			return nil, ctx.Err()
		}
	}
}

// startLocked starts a fetch from state s.
func (e *Engine) startLocked(s *state, early bool) *fetchCall {
	var ctx context.Context
	call := &fetchCall{done: make(chan struct{}), waiting: make(chan struct{}), epoch: s.epoch}
	if e.timeout > 0 {
		ctx, call.cancel = context.WithTimeout(context.Background(), e.timeout)
	} else {
		ctx, call.cancel = context.WithCancel(context.Background())
	}
	call.reason = "expired"
	if s.rej != nil {
		call.rejections, call.rej = s.rejections, s.rej
		call.reason = "rejected"
	}
	e.call = call
	if early {
		e.stats.Refreshes++
		call.reason = "refresh"
	}
	e.wg.Add(1)
	go e.run(ctx, call)
	return call
}

// cancelCallLocked cancels the fetch in flight, whose result a new login
// epoch makes moot.
func (e *Engine) cancelCallLocked() {
	if e.call != nil {
		e.call.cancel()
		e.call = nil
	}
}

// run is one fetch: attempts, with backoff after transient failures, until
// a token is installed, a terminal failure, FetchTimeout, or cancellation.
func (e *Engine) run(ctx context.Context, call *fetchCall) {
	defer e.wg.Done()
	defer call.cancel()
	ctx, obs := e.obs.fetch(ctx, call.reason)
	// finish ends the observation first: whoever the fetch wakes sees it
	// ended.
	finish := func(tok *Token, creds *Credentials, took time.Duration, err, observed error) {
		obs.End(observedErr(observed))
		e.finish(call, tok, creds, took, err)
	}
	var held *Token // obtained and saved, but its check failed transiently
	for attempt := 1; ; attempt++ {
		start := e.clock.Now()
		tok, creds, fetched, err := e.attempt(ctx, call, &held)
		obs.Attempt(attempt, observedErr(err))
		if err == nil {
			var took time.Duration
			if fetched {
				took = e.clock.Now().Sub(start)
			}
			finish(tok, creds, took, nil, nil)
			return
		}
		if errors.Is(err, errSuperseded) || ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			finish(nil, nil, 0, e.ended(ctx, call, err), err)
			return
		}
		e.mu.Lock()
		e.stats.Failures++
		if IsTransient(err) {
			call.last = err
		}
		e.mu.Unlock()
		if !IsTransient(err) {
			finish(nil, nil, 0, err, err)
			return
		}
		if perr := e.pause(ctx, call, attempt, err); perr != nil {
			finish(nil, nil, 0, e.ended(ctx, call, perr), err)
			return
		}
	}
}

// pause waits before the attempt after attempt, which failed with err: the
// backoff's delay, or its shorter waiting delay once a caller waits for
// the fetch (see [Backoff]). A caller that arrives during a long wait cuts
// it short.
func (e *Engine) pause(ctx context.Context, call *fetchCall, attempt int, err error) error {
	ra := retryAfter(err)
	d := e.backoff.delay(attempt, ra)
	select {
	case <-call.waiting:
		d = min(d, e.backoff.waitingDelay(attempt, ra))
	default:
	}
	e.log.Debug("auth: transient failure; retrying", "error", err, "attempt", attempt, "retry_in", d)
	start := e.clock.Now()
	fired := make(chan struct{})
	t := e.clock.AfterFunc(d, func() { close(fired) })
	select {
	case <-fired:
		return nil
	case <-ctx.Done():
		t.Stop()
		return ctx.Err()
	case <-call.waiting:
		if !t.Stop() {
			return nil // fired meanwhile
		}
		left := d - e.clock.Now().Sub(start)
		return backoff.Sleep(ctx, e.clock.AfterFunc, min(left, e.backoff.waitingDelay(attempt, ra)))
	}
}

// ended describes a fetch that its ctx ended: cancelled (superseded or
// closed; finish sorts those out) or past FetchTimeout.
func (e *Engine) ended(ctx context.Context, call *fetchCall, err error) error {
	if errors.Is(err, errSuperseded) || !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return errSuperseded
	}
	e.mu.Lock()
	last := call.last
	e.mu.Unlock()
	if last != nil {
		return fmt.Errorf("auth: no token within FetchTimeout (%s): %w", e.timeout, last)
	}
	return fmt.Errorf("auth: no token within FetchTimeout (%s): %w", e.timeout, err)
}

// attempt runs one attempt: re-check a held token, or obtain a new one
// (store, fetch, save) and check it. fetched reports that the fetch
// function ran and succeeded.
func (e *Engine) attempt(ctx context.Context, call *fetchCall, held **Token) (tok *Token, creds *Credentials, fetched bool, err error) {
	if *held != nil {
		tok = (*held).Clone() // the held one is published: never written
	} else {
		tok, fetched, err = e.obtain(ctx, call)
		if err != nil {
			return nil, nil, false, err
		}
	}
	if fetched || *held != nil {
		checked, err := e.runCheck(ctx, call, tok)
		if err != nil {
			if IsTransient(err) {
				*held = tok
			}
			return nil, nil, false, err
		}
		*held = nil
		if checked != tok {
			tok = checked
			e.resaveIdentity(ctx, tok)
		}
	}
	if !e.servable(tok) {
		// Issued already past its serve time: a clock that is off, or an
		// application callback that hands out an old token. Keep it as the
		// refresh source; asking again later may help.
		e.hold(call, tok)
		return nil, nil, false, Transient(&TokenExpiredError{Expiry: tok.Expiry})
	}
	creds, err = e.prepareToken(tok)
	if err != nil {
		e.hold(call, tok)
	}
	return tok, creds, fetched, err
}

// servable reports whether tok may be served now, its margin included.
func (e *Engine) servable(tok *Token) bool {
	if noExpiry(tok.Expiry) {
		return true
	}
	now := e.clock.Now()
	_, serveUntil := e.schedule(tok, now, e.fetchTookNow())
	return now.Before(serveUntil)
}

// schedule returns when tok is due for refresh and until when it may be
// served. Margins are judged on the token's whole lifetime: from its JWT
// "iat" when it has one (a token handed over late is as old as it is),
// else from now. A token without expiry is neither.
func (e *Engine) schedule(tok *Token, now time.Time, fetchTook time.Duration) (refreshAt, serveUntil time.Time) {
	if tok.Expiry.IsZero() {
		return time.Time{}, time.Time{}
	}
	start := now
	if iat, _, ok := jwtclaims.Times(tok.AccessToken.Reveal()); ok && !iat.IsZero() && iat.Before(now) && iat.Before(tok.Expiry) {
		start = iat
	}
	m := e.marginFor(tok.Expiry.Sub(start), fetchTook)
	return tok.Expiry.Add(-m), tok.Expiry.Add(-serveMargin(m))
}

// fetchTookNow returns how long the last fetch took.
func (e *Engine) fetchTookNow() time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.fetchTook
}

// hold makes tok the refresh source of the current state, if call's epoch
// still holds: a token that was saved but cannot be served.
func (e *Engine) hold(call *fetchCall, tok *Token) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if cur := e.st.Load(); cur.epoch == call.epoch && cur.tok != tok {
		e.setLocked(cur.withToken(tok))
	}
}

// runCheck runs the check; a failed token is held as the refresh source.
// It returns tok, or a copy of it that records a newly verified identity.
func (e *Engine) runCheck(ctx context.Context, call *fetchCall, tok *Token) (*Token, error) {
	if e.check == nil {
		return tok, nil
	}
	id, err := e.check(ctx, tok.Clone())
	if err != nil {
		e.hold(call, tok)
		return nil, err
	}
	if id != tok.Identity() {
		tok = tok.WithIdentity(id)
	}
	return tok, nil
}

// finish ends call: it installs the token, or records the failure. Its
// records are logged once the engine's mutex is released, so that a slow
// log sink never stalls readers.
func (e *Engine) finish(call *fetchCall, tok *Token, creds *Credentials, took time.Duration, err error) {
	e.mu.Lock()
	logf := e.finishLocked(call, tok, creds, took, err)
	close(call.done)
	e.mu.Unlock()
	if logf != nil {
		logf()
	}
}

// finishLocked is finish under the mutex; it returns what to log.
func (e *Engine) finishLocked(call *fetchCall, tok *Token, creds *Credentials, took time.Duration, err error) (logf func()) {
	if e.call == call {
		e.call = nil
	}
	cur := e.st.Load()
	switch {
	case cur.closed:
		call.err = ErrClosed
		return nil
	case cur.epoch != call.epoch || errors.Is(err, errSuperseded):
		return nil // waiters look at the new state
	}
	if err == nil {
		if took > 0 {
			e.fetchTook = took
		}
		next, serr := e.newState(cur.epoch, tok, creds, call.rejections)
		if serr == nil {
			if call.rej != nil && tok.AccessToken.Equal(call.rej.access) {
				by, n := call.rej.by, call.rejections
				logf = func() {
					e.log.Warn("auth: the new credential is the one a service just rejected; serving it again, with backoff",
						"service", string(by), "rejected_in_a_row", n)
				}
			}
			e.setLocked(next)
			e.failures, e.lastErr, e.retryAt = 0, nil, 0
			call.creds = creds
			return logf
		}
		err = serr
		e.stats.Failures++
		if cur.tok != tok {
			e.setLocked(cur.withToken(tok))
			cur = e.st.Load()
		}
	}
	return e.failedLocked(call, cur, err)
}

// failedLocked records a terminal failure of call; it returns what to log.
func (e *Engine) failedLocked(call *fetchCall, cur *state, err error) (logf func()) {
	e.failures++
	d := e.backoff.delay(int(e.failures), retryAfter(err))
	now := e.clock.Now()
	if cur.creds != nil && now.UnixNano() < cur.serveUntil {
		// An early refresh failed; the current token is still valid: keep
		// serving it and try again later.
		next := cur.withToken(cur.tok)
		next.refreshAt = now.Add(d).UnixNano()
		e.setLocked(next)
		call.creds = cur.creds
		return func() {
			e.log.Warn("auth: early refresh failed; keeping the current token", "error", err, "retry_in", d)
		}
	}
	if call.rej != nil {
		err = fmt.Errorf("auth: no new credential after the %s rejected the last one: %w", call.rej.by, err)
	}
	e.lastErr, e.retryAt = err, now.Add(d).UnixNano()
	call.err = err
	if errors.Is(err, ErrLoginRequired) {
		// The normal start of an interactive login, not a failure to warn of.
		return func() { e.log.Debug("auth: no credential without a login", "error", err) }
	}
	return func() { e.log.Warn("auth: fetch failed", "error", err, "retry_in", d) }
}

// newState returns the state that serves tok, or an error wrapping
// ErrTokenExpired when tok is too close to its expiry to be served.
func (e *Engine) newState(epoch uint64, tok *Token, creds *Credentials, rejections int32) (*state, error) {
	s := &state{epoch: epoch, tok: tok, creds: creds, rejections: rejections,
		refreshAt: never, serveUntil: never}
	now := e.clock.Now()
	if rejections > 0 {
		s.quietUntil = now.Add(e.backoff.delay(int(rejections), 0)).UnixNano()
	}
	if noExpiry(tok.Expiry) {
		return s, nil
	}
	refreshAt, serveUntil := e.schedule(tok, now, e.fetchTook)
	if !now.Before(serveUntil) {
		return nil, &TokenExpiredError{Expiry: tok.Expiry}
	}
	if !now.Before(refreshAt) {
		// Due the moment it arrived (a cached token handed out late):
		// served, and refreshed again only after a backoff.
		e.dueOnArrival++
		refreshAt = now.Add(e.backoff.delay(int(e.dueOnArrival), 0))
	} else {
		e.dueOnArrival = 0
	}
	s.serveUntil = serveUntil.UnixNano()
	s.refreshAt = refreshAt.UnixNano()
	return s, nil
}

// withToken returns a copy of s (same credentials, times and read mark)
// whose refresh source is tok.
func (s *state) withToken(tok *Token) *state {
	n := &state{epoch: s.epoch, tok: tok, creds: s.creds, refreshAt: s.refreshAt, serveUntil: s.serveUntil,
		quietUntil: s.quietUntil, rejections: s.rejections, rej: s.rej, closed: s.closed}
	n.read.Store(s.read.Load())
	return n
}

// setLocked is the one install path: it publishes next and schedules its
// refresh. Callers check the epoch first.
func (e *Engine) setLocked(next *state) {
	e.st.Store(next)
	var at int64
	if next.creds != nil && !next.closed && next.refreshAt != never {
		at = next.refreshAt
	}
	e.sched.set(e, at)
}

// prepareToken returns the credentials of tok.
func (e *Engine) prepareToken(tok *Token) (*Credentials, error) {
	e.holdsKey(tok)
	return bearer(e.wire, tok, true)
}

// holdsKey reports whether tok's DPoP key, if it has one, can make
// proofs; a key the store knew by its thumbprint only (the only place
// such keys come from) becomes the engine's own when their thumbprints
// match. tok must not be published.
func (e *Engine) holdsKey(tok *Token) bool {
	if !e.canProve(tok) {
		return false
	}
	if k := tok.DPoPKey; k != nil && k.prover == nil {
		tok.DPoPKey = e.cust.dpop
	}
	return true
}

// canProve is holdsKey without the change: it reads tok only.
func (e *Engine) canProve(tok *Token) bool {
	k := tok.DPoPKey
	return k == nil || k.prover != nil || e.cust != nil && e.cust.dpop != nil && e.cust.dpop.jkt == k.jkt
}

// marginFor is the configured Margin's For.
func (e *Engine) marginFor(lifetime, fetchTook time.Duration) time.Duration {
	if e.margin == nil {
		return Margin{}.For(lifetime, fetchTook)
	}
	return e.margin.For(lifetime, fetchTook)
}

// capExpiry lowers tok.Expiry to its access token's JWT "exp" when that is
// earlier (or when the provider gave no lifetime): the service that checks
// the token goes by exp.
func capExpiry(tok *Token) {
	if _, exp, ok := jwtclaims.Times(tok.AccessToken.Reveal()); ok && !exp.IsZero() && (tok.Expiry.IsZero() || exp.Before(tok.Expiry)) {
		tok.Expiry = exp
	}
}

// String describes the engine: whether it serves a valid token and until
// when. Printing an engine goes through String under every verb, so that it
// never reads, by reflection, state that the engine's goroutines change.
func (e *Engine) String() string {
	s := e.st.Load()
	switch {
	case s.closed:
		return "auth.Engine{closed}"
	case s.creds == nil:
		return "auth.Engine{no valid token}"
	case s.serveUntil == never:
		return "auth.Engine{valid, no expiry}"
	}
	return "auth.Engine{valid until " + time.Unix(0, s.serveUntil).UTC().Format(time.RFC3339) + "}"
}

// Format prints String under every verb (%q quotes it).
func (e *Engine) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", e.String())
		return
	}
	_, _ = f.Write([]byte(e.String()))
}

// LogValue logs String.
func (e *Engine) LogValue() slog.Value { return slog.StringValue(e.String()) }
