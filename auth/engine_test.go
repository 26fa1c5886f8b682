package auth_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/internal/fakeclock"
)

// fakeGrant is a FetchFunc whose tokens and failures a test controls.
type fakeGrant struct {
	clock    *fakeclock.Clock
	lifetime time.Duration
	prefix   string // of the tokens it issues, so that two grants differ

	mu       sync.Mutex
	calls    int
	currents []*auth.Token // the current token passed to each call
	fail     []error       // errors returned by the next calls, in order
	gate     chan struct{} // when set, each call waits for it to be closed
	started  chan struct{} // when set, receives once per call, before the gate
}

func (g *fakeGrant) fetch(ctx context.Context, current *auth.Token) (*auth.Token, error) {
	g.mu.Lock()
	g.calls++
	n := g.calls
	g.currents = append(g.currents, current)
	gate, started := g.gate, g.started
	var err error
	if len(g.fail) > 0 {
		err, g.fail = g.fail[0], g.fail[1:]
	}
	g.mu.Unlock()
	if started != nil {
		started <- struct{}{}
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err != nil {
		return nil, err
	}
	return &auth.Token{
		AccessToken:  auth.NewSecret(fmt.Sprintf("%saccess-%d", g.prefix, n)),
		TokenType:    "Bearer",
		RefreshToken: auth.NewSecret(fmt.Sprintf("%srefresh-%d", g.prefix, n)),
		Expiry:       g.clock.Now().Add(g.lifetime),
	}, nil
}

func (g *fakeGrant) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls
}

func newEngine(t *testing.T, g *fakeGrant, mod func(*auth.EngineConfig)) *auth.Engine {
	t.Helper()
	cfg := auth.EngineConfig{Fetch: g.fetch, Clock: g.clock}
	if mod != nil {
		mod(&cfg)
	}
	e, err := auth.NewEngine(cfg)
	if err != nil {
		t.Fatalf("NewEngine: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func accessToken(t *testing.T, e *auth.Engine) string {
	t.Helper()
	h, err := e.HubRequestHeaders(context.Background())
	if err != nil {
		t.Fatalf("HubRequestHeaders: %v", err)
	}
	return h.Get("Authorization")
}

// eventually polls cond until it holds; it bounds a wait for a background
// goroutine, never a wait for an expiry (those are reached with the clock).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}

func TestMarginFor(t *testing.T) {
	tests := []struct {
		name      string
		m         auth.Margin
		lifetime  time.Duration
		fetchTook time.Duration
		want      time.Duration
	}{
		{"one second token: half", auth.Margin{}, time.Second, 0, 500 * time.Millisecond},
		{"three second token: the 1 s floor", auth.Margin{}, 3 * time.Second, 0, time.Second},
		{"ten second token: the 1 s floor", auth.Margin{}, 10 * time.Second, 0, time.Second},
		{"one minute token", auth.Margin{}, time.Minute, 0, 6 * time.Second},
		{"one hour token hits the ceiling", auth.Margin{}, time.Hour, 0, 5 * time.Minute},
		{"day token hits the ceiling", auth.Margin{}, 24 * time.Hour, 0, 5 * time.Minute},
		{"slow fetch widens the margin", auth.Margin{}, 10 * time.Second, 800 * time.Millisecond, 1600 * time.Millisecond},
		{"never more than half the lifetime", auth.Margin{}, time.Second, time.Second, 500 * time.Millisecond},
		{"floor", auth.Margin{Min: 30 * time.Second}, time.Hour, 0, 5 * time.Minute},
		{"floor above the share", auth.Margin{Min: 30 * time.Second}, 2 * time.Minute, 0, 30 * time.Second},
		{"floor capped at half", auth.Margin{Min: 30 * time.Second}, 10 * time.Second, 0, 5 * time.Second},
		{"fixed", auth.Margin{Min: time.Minute, Max: time.Minute}, time.Hour, 0, time.Minute},
		{"fixed capped at half", auth.Margin{Min: time.Minute, Max: time.Minute}, 30 * time.Second, 0, 15 * time.Second},
		{"min above the default max", auth.Margin{Min: 10 * time.Minute}, 24 * time.Hour, 0, 10 * time.Minute},
		{"fraction", auth.Margin{Fraction: 0.2}, 100 * time.Second, 0, 20 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.m.For(tt.lifetime, tt.fetchTook); got != tt.want {
				t.Fatalf("For(%v, %v) = %v, want %v", tt.lifetime, tt.fetchTook, got, tt.want)
			}
		})
	}
}

func TestEngineRefreshesAtTheMargin(t *testing.T) {
	tests := []struct {
		name     string
		lifetime time.Duration
		margin   time.Duration // expected refresh margin
	}{
		{"one second token", time.Second, 500 * time.Millisecond},
		{"one hour token", time.Hour, 5 * time.Minute},
		{"24 hour token", 24 * time.Hour, 5 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := fakeclock.New(time.Time{})
			g := &fakeGrant{clock: clock, lifetime: tt.lifetime}
			e := newEngine(t, g, nil)
			if got := accessToken(t, e); got != "Bearer access-1" {
				t.Fatalf("first header = %q", got)
			}
			if !e.Valid() {
				t.Fatal("Valid() = false right after the fetch")
			}
			clock.Advance(tt.lifetime - tt.margin - time.Nanosecond)
			if g.count() != 1 || accessToken(t, e) != "Bearer access-1" {
				t.Fatalf("refreshed before the margin: %d fetches", g.count())
			}
			clock.Advance(time.Nanosecond)
			eventually(t, "the background refresh", func() bool { return accessToken(t, e) == "Bearer access-2" })
			if g.count() != 2 {
				t.Fatalf("fetches = %d, want 2", g.count())
			}
			if s := e.Stats(); s.Refreshes != 1 || s.Fetches != 2 || s.Waits != 1 {
				t.Fatalf("stats = %+v", s)
			}
			if cur := g.currents[1]; cur == nil || cur.RefreshToken.Reveal() != "refresh-1" {
				t.Fatalf("the refresh did not get the current token: %v", cur)
			}
		})
	}
}

// While the background refresh runs, callers keep getting the still valid
// token without waiting.
func TestEngineServesDuringRefresh(t *testing.T) {
	clock := fakeclock.New(time.Time{})
	g := &fakeGrant{clock: clock, lifetime: time.Minute}
	e := newEngine(t, g, nil)
	accessToken(t, e)

	g.mu.Lock()
	g.gate, g.started = make(chan struct{}), make(chan struct{}, 1)
	g.mu.Unlock()
	clock.Advance(55 * time.Second) // inside the 6 s margin
	<-g.started
	for range 1000 {
		if got := accessToken(t, e); got != "Bearer access-1" {
			t.Fatalf("during the refresh got %q", got)
		}
	}
	if e.Valid() {
		t.Fatal("Valid() = true inside the margin")
	}
	close(g.gate)
	eventually(t, "the new token", func() bool { return accessToken(t, e) == "Bearer access-2" })
}

func TestEngineSingleFetchForManyCallers(t *testing.T) {
	clock := fakeclock.New(time.Time{})
	g := &fakeGrant{clock: clock, lifetime: time.Hour, gate: make(chan struct{})}
	e := newEngine(t, g, nil)

	const n = 64
	var wg sync.WaitGroup
	var calling atomic.Int32
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			calling.Add(1)
			h, err := e.MessageServiceMetadata(context.Background())
			if err == nil && h["authorization"] != "Bearer access-1" {
				err = fmt.Errorf("metadata = %v", h)
			}
			errs <- err
		}()
	}
	eventually(t, "all callers", func() bool { return calling.Load() == n })
	close(g.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := g.count(); got != 1 {
		t.Fatalf("fetches = %d, want 1", got)
	}
}

func TestEngineWaiterCancelled(t *testing.T) {
	clock := fakeclock.New(time.Time{})
	g := &fakeGrant{clock: clock, lifetime: time.Hour, gate: make(chan struct{}), started: make(chan struct{}, 1)}
	e := newEngine(t, g, nil)

	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, err := e.Credentials(ctx)
		first <- err
	}()
	<-g.started
	second := make(chan error, 1)
	go func() {
		_, err := e.Credentials(context.Background())
		second <- err
	}()
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter got %v, want context.Canceled", err)
	}
	close(g.gate) // the shared fetch goes on after the first waiter left
	if err := <-second; err != nil {
		t.Fatalf("second waiter: %v", err)
	}
	if g.count() != 1 {
		t.Fatalf("fetches = %d, want 1", g.count())
	}
}

func TestEngineCancelledContextStartsNothing(t *testing.T) {
	clock := fakeclock.New(time.Time{})
	g := &fakeGrant{clock: clock, lifetime: time.Hour}
	e := newEngine(t, g, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.Credentials(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	if g.count() != 0 {
		t.Fatalf("fetches = %d, want 0", g.count())
	}
}

func TestEngineFailedEarlyRefreshKeepsServing(t *testing.T) {
	clock := fakeclock.New(time.Time{})
	g := &fakeGrant{clock: clock, lifetime: 10 * time.Minute}
	e := newEngine(t, g, func(c *auth.EngineConfig) { c.Backoff = auth.Backoff{Min: 10 * time.Second, Max: 10 * time.Second} })
	accessToken(t, e)

	g.mu.Lock()
	g.fail = []error{errors.New("provider down"), errors.New("provider down")}
	g.mu.Unlock()
	clock.Advance(9 * time.Minute) // refresh due (margin 1 min): fails
	eventually(t, "the failed refresh", func() bool { return e.Stats().Failures == 1 })
	if got := accessToken(t, e); got != "Bearer access-1" {
		t.Fatalf("after a failed refresh got %q", got)
	}
	clock.Advance(10 * time.Second) // the retry, with backoff: fails again
	eventually(t, "the second failure", func() bool { return e.Stats().Failures == 2 })
	if got := accessToken(t, e); got != "Bearer access-1" {
		t.Fatalf("after two failed refreshes got %q", got)
	}
	clock.Advance(10 * time.Second) // third attempt succeeds
	eventually(t, "the new token", func() bool { return accessToken(t, e) == "Bearer access-4" })
	if g.count() != 4 {
		t.Fatalf("fetches = %d, want 4", g.count())
	}
}

func TestEngineErrorsAfterExpiryAreTypedAndRateLimited(t *testing.T) {
	clock := fakeclock.New(time.Time{})
	g := &fakeGrant{clock: clock, lifetime: time.Minute}
	e := newEngine(t, g, func(c *auth.EngineConfig) { c.Backoff = auth.Backoff{Min: 4 * time.Second, Max: 4 * time.Second} })
	accessToken(t, e)

	rejected := &auth.OAuthError{Code: "invalid_grant", Description: "refresh token expired", StatusCode: 400}
	g.mu.Lock()
	g.fail = []error{rejected, rejected, rejected, rejected, rejected}
	g.mu.Unlock()
	clock.Advance(54 * time.Second) // early refresh fails (retry in 2..4 s)
	eventually(t, "the failed refresh", func() bool { return e.Stats().Failures == 1 })
	clock.Advance(time.Second) // retry timer may fire; the token then expires at 60 s
	clock.Advance(5 * time.Second)
	eventually(t, "no fetch in flight", func() bool { return e.Stats().Failures == e.Stats().Fetches-1 })

	before := g.count()
	for range 100 {
		_, err := e.HubRequestHeaders(context.Background())
		if !errors.Is(err, auth.ErrInvalidGrant) {
			t.Fatalf("after expiry got %v, want an error wrapping ErrInvalidGrant", err)
		}
		var oe *auth.OAuthError
		if !errors.As(err, &oe) || oe.StatusCode != 400 {
			t.Fatalf("error is not the typed OAuth error: %v", err)
		}
	}
	if got := g.count() - before; got > 1 {
		t.Fatalf("100 callers after expiry caused %d fetches, want at most 1", got)
	}
	if e.Valid() {
		t.Fatal("Valid() = true after expiry")
	}
	// After the backoff one new attempt is allowed.
	mid := g.count()
	clock.Advance(5 * time.Second)
	e.HubRequestHeaders(context.Background())
	if got := g.count() - mid; got != 1 {
		t.Fatalf("after the backoff: %d fetches, want 1", got)
	}
}

func TestEngineInvalidate(t *testing.T) {
	clock := fakeclock.New(time.Time{})
	g := &fakeGrant{clock: clock, lifetime: time.Hour}
	e := newEngine(t, g, nil)
	old := accessToken(t, e)

	e.Invalidate(auth.ServiceHub, "Bearer some-other-token") // not ours: ignored
	if accessToken(t, e) != old || g.count() != 1 {
		t.Fatal("a foreign value invalidated the token")
	}

	for range 10 { // ten requests rejected at once
		e.Invalidate(auth.ServiceHub, old)
	}
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := e.Credentials(context.Background()); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if g.count() != 2 {
		t.Fatalf("fetches = %d, want 2 (one after the invalidation)", g.count())
	}
	e.Invalidate(auth.ServiceHub, old) // a late rejection of the old value: ignored
	if accessToken(t, e) != "Bearer access-2" || g.count() != 2 {
		t.Fatal("a stale rejection dropped the new token")
	}
	if cur := g.currents[1]; cur == nil || cur.RefreshToken.Reveal() != "refresh-1" {
		t.Fatalf("the fetch after invalidation lost the refresh token: %v", cur)
	}
}

func TestEngineCloseEndsBackgroundWork(t *testing.T) {
	before := runtime.NumGoroutine()
	clock := fakeclock.New(time.Time{})
	g := &fakeGrant{clock: clock, lifetime: time.Minute}
	e, err := auth.NewEngine(auth.EngineConfig{Fetch: g.fetch, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Credentials(context.Background()); err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	g.gate, g.started = make(chan struct{}), make(chan struct{}, 1)
	g.mu.Unlock()
	clock.Advance(55 * time.Second) // a refresh starts and blocks
	<-g.started

	done := make(chan struct{})
	go func() { e.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not cancel the running fetch")
	}
	if _, err := e.Credentials(context.Background()); !errors.Is(err, auth.ErrClosed) {
		t.Fatalf("after Close got %v, want ErrClosed", err)
	}
	if clock.Pending() != 0 {
		t.Fatalf("%d timers left after Close", clock.Pending())
	}
	eventually(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}

func TestEngineStore(t *testing.T) {
	clock := fakeclock.New(time.Time{})
	store := &auth.MemoryStore{}
	key := auth.StoreKey{Issuer: "https://idp.test", ClientID: "cli", Scopes: []string{"openid", "offline_access"}}
	g1 := &fakeGrant{clock: clock, lifetime: time.Hour}
	e1 := newEngine(t, g1, func(c *auth.EngineConfig) { c.Store, c.StoreKey = store, key })
	first := accessToken(t, e1)

	// A second engine (the next run of the program) uses the stored token.
	g2 := &fakeGrant{clock: clock, lifetime: time.Hour, prefix: "second-"}
	e2 := newEngine(t, g2, func(c *auth.EngineConfig) { c.Store, c.StoreKey = store, key })
	if got := accessToken(t, e2); got != first || g2.count() != 0 || e2.Stats().StoreHits != 1 {
		t.Fatalf("second engine: %q, %d fetches, stats %+v", got, g2.count(), e2.Stats())
	}

	// Once a service rejected it, the stored token is not reused, but its
	// refresh token is handed to the grant.
	e2.Invalidate(auth.ServiceHub, first)
	if got := accessToken(t, e2); got != "Bearer second-access-1" || g2.count() != 1 {
		t.Fatalf("after invalidation: %q, %d fetches", got, g2.count())
	}
	if cur := g2.currents[0]; cur == nil || cur.RefreshToken.Reveal() != "refresh-1" {
		t.Fatalf("the grant did not get the stored refresh token: %v", cur)
	}

	// Other scopes: the stored token does not fit.
	other := key
	other.Scopes = []string{"openid"}
	g3 := &fakeGrant{clock: clock, lifetime: time.Hour}
	e3 := newEngine(t, g3, func(c *auth.EngineConfig) { c.Store, c.StoreKey = store, other })
	accessToken(t, e3)
	if g3.count() != 1 || g3.currents[0] != nil {
		t.Fatalf("a token for other scopes was used: %d fetches, current %v", g3.count(), g3.currents[0])
	}

	// Logout is the logout.
	if err := e3.Logout(context.Background()); err != nil {
		t.Fatal(err)
	}
	if tok, _ := store.Load(context.Background(), other); tok != nil {
		t.Fatal("Logout left the token in the store")
	}
}

func TestEngineSetAndInitial(t *testing.T) {
	clock := fakeclock.New(time.Time{})
	g := &fakeGrant{clock: clock, lifetime: time.Hour}
	initial := &auth.Token{AccessToken: auth.NewSecret("initial"), Expiry: clock.Now().Add(time.Hour)}
	e := newEngine(t, g, func(c *auth.EngineConfig) { c.Initial = initial })
	if got := accessToken(t, e); got != "Bearer initial" || g.count() != 0 {
		t.Fatalf("initial token not served: %q", got)
	}
	if err := e.Set(context.Background(), &auth.Token{AccessToken: auth.NewSecret("from-login")}); err != nil {
		t.Fatal(err)
	}
	if got := accessToken(t, e); got != "Bearer from-login" {
		t.Fatalf("after Set: %q", got)
	}
	if err := e.Set(context.Background(), &auth.Token{AccessToken: auth.NewSecret("bad\r\nX-Injected: 1")}); !errors.Is(err, auth.ErrMalformedToken) {
		t.Fatalf("header injection accepted: %v", err)
	}
}

func TestEngineRejectsExpiredFetch(t *testing.T) {
	clock := fakeclock.New(time.Time{})
	e := newEngine(t, &fakeGrant{clock: clock}, func(c *auth.EngineConfig) {
		c.Fetch = func(context.Context, *auth.Token) (*auth.Token, error) {
			return &auth.Token{AccessToken: auth.NewSecret("stale"), Expiry: clock.Now().Add(-time.Second)}, nil
		}
	})
	// Retried (the clock may be off, an application may hand out a newer
	// token later) until the caller gives up, who then learns why. The
	// caller gives up once the engine waits to retry — a timer on the fake
	// clock, armed after the failure is on record — not after a real
	// deadline that a loaded machine may reach before the first attempt.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	result := make(chan error, 1)
	go func() {
		_, err := e.Credentials(ctx)
		result <- err
	}()
	eventually(t, "the engine to wait for its retry", func() bool { return clock.Pending() > 0 })
	cancel()
	err := <-result
	if !errors.Is(err, auth.ErrTokenExpired) || !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want ErrTokenExpired and context.Canceled", err)
	}
	var expired *auth.TokenExpiredError
	if !errors.As(err, &expired) || !expired.Expiry.Equal(clock.Now().Add(-time.Second)) {
		t.Errorf("got %v, want a *TokenExpiredError carrying the token's expiry", err)
	}
	if cur := e.Current(); cur == nil || cur.AccessToken.Reveal() != "stale" {
		t.Fatalf("the stale token is not kept as the refresh source: %v", cur)
	}
}

func TestNewEngineConfigErrors(t *testing.T) {
	fetch := func(context.Context, *auth.Token) (*auth.Token, error) { return nil, nil }
	tests := []struct {
		name string
		cfg  auth.EngineConfig
	}{
		{"no fetch", auth.EngineConfig{}},
		{"fraction too large", auth.EngineConfig{Fetch: fetch, Margin: auth.Margin{Fraction: 1.5}}},
		{"negative margin", auth.EngineConfig{Fetch: fetch, Margin: auth.Margin{Min: -1}}},
		{"backoff min above max", auth.EngineConfig{Fetch: fetch, Backoff: auth.Backoff{Min: time.Minute, Max: time.Second}}},
		{"margin min above max", auth.EngineConfig{Fetch: fetch, Margin: auth.Margin{Min: time.Minute, Max: time.Second}}},
		{"bad header name", auth.EngineConfig{Fetch: fetch, Wire: auth.Wire{Hub: auth.Field{Name: "Bad Header"}}}},
		{"uppercase metadata key", auth.EngineConfig{Fetch: fetch, Wire: auth.Wire{MessageService: auth.Field{Name: "Token"}}}},
		{"reserved metadata key", auth.EngineConfig{Fetch: fetch, Wire: auth.Wire{MessageService: auth.Field{Name: "grpc-timeout"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := auth.NewEngine(tt.cfg); !errors.Is(err, auth.ErrInvalidConfig) {
				t.Fatalf("got %v, want ErrInvalidConfig", err)
			}
		})
	}
}

// A fetch that hands back the very credential a service rejected serves it
// again (the issuer may know better than the service), and further
// rejections of it are deferred by the backoff: no fetch per request.
func TestEngineServesTheRejectedCredentialAgainWithBackoff(t *testing.T) {
	clock := fakeclock.New(time.Time{})
	calls := 0
	e := newEngine(t, &fakeGrant{clock: clock}, func(c *auth.EngineConfig) {
		c.Backoff = auth.Backoff{Min: 10 * time.Second, Max: 10 * time.Second}
		c.Fetch = func(context.Context, *auth.Token) (*auth.Token, error) {
			calls++
			return &auth.Token{AccessToken: auth.NewSecret("same"), Expiry: clock.Now().Add(time.Hour)}, nil
		}
	})
	accessToken(t, e)
	e.Invalidate(auth.ServiceHub, "Bearer same")
	for range 5 {
		if got := accessToken(t, e); got != "Bearer same" {
			t.Fatalf("got %q, want the credential served again", got)
		}
		e.Invalidate(auth.ServiceHub, "Bearer same") // deferred: inside the backoff
	}
	if calls != 2 {
		t.Fatalf("fetches = %d, want 2 (the first, then one after the rejection)", calls)
	}
	if s := e.Stats(); s.Invalidations != 1 || s.RejectionsDeferred != 5 {
		t.Fatalf("stats = %+v, want 1 invalidation and 5 deferred", s)
	}
	clock.Advance(10 * time.Second) // past the backoff: the next rejection counts
	e.Invalidate(auth.ServiceHub, "Bearer same")
	accessToken(t, e)
	if calls != 3 {
		t.Fatalf("fetches = %d after the backoff, want 3", calls)
	}
}

// With a store, the refresh at the margin fetches a new token: the engine's
// own token, found in the store, is not taken for another process's.
func TestEngineRefreshesThroughAStore(t *testing.T) {
	clock := fakeclock.New(time.Time{})
	g := &fakeGrant{clock: clock, lifetime: 5 * time.Minute}
	store := &auth.MemoryStore{}
	e := newEngine(t, g, func(c *auth.EngineConfig) { c.Store, c.StoreKey = store, auth.StoreKey{Issuer: "https://idp.test"} })
	accessToken(t, e)
	clock.Advance(4*time.Minute + 31*time.Second) // margin: 30 s
	eventually(t, "the refresh", func() bool { return accessToken(t, e) == "Bearer access-2" })
	if s := e.Stats(); s.Fetches != 2 || s.StoreHits != 0 || s.Refreshes != 1 {
		t.Fatalf("stats = %+v, want 2 fetches, no store hit", s)
	}
	if tok, _ := store.Load(context.Background(), auth.StoreKey{Issuer: "https://idp.test"}); tok == nil || tok.RefreshToken.Reveal() != "refresh-2" {
		t.Fatalf("the rotated token was not saved: %v", tok)
	}
}

// "Login required" is the normal start of an interactive login: logged at
// debug level, not as a warning.
func TestEngineLoginRequiredIsNotAWarning(t *testing.T) {
	var logged strings.Builder
	clock := fakeclock.New(time.Time{})
	e := newEngine(t, &fakeGrant{clock: clock}, func(c *auth.EngineConfig) {
		c.Logger = slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelWarn}))
		c.Fetch = func(context.Context, *auth.Token) (*auth.Token, error) {
			return nil, fmt.Errorf("%w: no refresh token", auth.ErrLoginRequired)
		}
	})
	if _, err := e.Credentials(context.Background()); !errors.Is(err, auth.ErrLoginRequired) {
		t.Fatalf("got %v", err)
	}
	if logged.Len() != 0 {
		t.Fatalf("logged a warning: %s", logged.String())
	}
}
