package auth_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"weak"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/internal/fakeclock"
)

// The tests of this file pin the edges where engine v1 broke its promises
// (issue "Token engine v2", items 2 to 9). Each failed on engine v1.

// readHub returns the hub header or the error.
func readHub(e *auth.Engine, ctx context.Context) (string, error) {
	h, err := e.HubRequestHeaders(ctx)
	if err != nil {
		return "", err
	}
	return h.Get("Authorization"), nil
}

// Item 2: a logout (Logout) during a background refresh must win: the
// refresh that was already running neither installs nor saves its token.
func TestEngineLogoutBeatsFetchInFlight(t *testing.T) {
	clock := fakeclock.New(time.Time{})
	g := &fakeGrant{clock: clock, lifetime: time.Hour}
	store := &auth.MemoryStore{}
	key := auth.StoreKey{Issuer: "https://issuer.example"}
	e := newEngine(t, g, func(c *auth.EngineConfig) { c.Store, c.StoreKey = store, key })
	if _, err := readHub(e, context.Background()); err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	g.gate, g.started = make(chan struct{}), make(chan struct{}, 1)
	g.mu.Unlock()
	clock.Advance(58 * time.Minute) // past the refresh time: a background refresh starts
	readHub(e, context.Background())
	<-g.started
	if err := e.Logout(context.Background()); err != nil {
		t.Fatal(err)
	}
	close(g.gate) // the refresh completes after the logout
	auth.WaitFetches(e)
	if e.Valid() {
		t.Error("Valid after Logout: the refresh in flight undid the logout")
	}
	if tok, _ := store.Load(context.Background(), key); tok != nil {
		t.Errorf("store holds %v after Logout: the refresh in flight saved it again", tok)
	}
}

// Item 2: a new login (Set) during a fetch must win over the older fetch.
func TestEngineSetBeatsFetchInFlight(t *testing.T) {
	clock := fakeclock.New(time.Time{})
	g := &fakeGrant{clock: clock, lifetime: time.Hour, prefix: "old-user-"}
	e := newEngine(t, g, nil)
	if _, err := readHub(e, context.Background()); err != nil {
		t.Fatal(err)
	}
	refreshAtTheProvider(e, g, clock)
	newUser := &auth.Token{AccessToken: auth.NewSecret("new-user-access"), Expiry: clock.Now().Add(time.Hour)}
	if err := e.Set(context.Background(), newUser); err != nil {
		t.Fatal(err)
	}
	close(g.gate)
	auth.WaitFetches(e)
	got, err := readHub(e, context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got != "Bearer new-user-access" {
		t.Errorf("after Set during a fetch the engine serves %q, want the new login's token", got)
	}
}

// The same with a store: the refresh in flight, which began before the new
// login, neither installs nor saves its token (login.go: a new login starts
// a new epoch). Set waits for the store's lock, which the refresh holds.
func TestEngineSetBeatsFetchInFlightInTheStore(t *testing.T) {
	clock := fakeclock.New(time.Time{})
	store := &savesStore{}
	g := &fakeGrant{clock: clock, lifetime: time.Hour, prefix: "old-user-"}
	e := newEngine(t, g, func(c *auth.EngineConfig) { c.Store, c.StoreKey = store, custodyKey })
	first, err := readHub(e, context.Background())
	if err != nil {
		t.Fatal(err)
	}
	refreshAtTheProvider(e, g, clock) // the old user's refresh is at the provider, holding the store's lock
	newUser := &auth.Token{AccessToken: auth.NewSecret("new-user-access"), RefreshToken: auth.NewSecret("new-user-refresh"),
		Expiry: clock.Now().Add(time.Hour)}
	set := make(chan error, 1)
	go func() { set <- e.Set(context.Background(), newUser) }()
	eventually(t, "the new login to be served", func() bool {
		cur := e.Current()
		return cur != nil && cur.AccessToken.Reveal() == "new-user-access"
	})
	close(g.gate) // the provider answers the old refresh
	if err := <-set; err != nil {
		t.Fatal(err)
	}
	auth.WaitFetches(e)
	if n := g.count(); n != 2 {
		t.Fatalf("%d fetches, want 2: the old user's refresh must have answered", n)
	}
	if got, err := readHub(e, context.Background()); err != nil || got != "Bearer new-user-access" {
		t.Errorf("the engine serves %q, %v; want the new login's token", got, err)
	}
	for _, saved := range store.accessTokens() {
		if "Bearer "+saved != first && saved != "new-user-access" {
			t.Errorf("the store was given %q, the old user's refresh that began before the new login", saved)
		}
	}
	stored, err := store.Load(context.Background(), custodyKey)
	if err != nil || stored == nil || stored.AccessToken.Reveal() != "new-user-access" {
		t.Errorf("the store holds %v, %v; want the new login's token", stored, err)
	}
}

// refreshAtTheProvider starts e's refresh of its hour-long token and
// returns once the grant holds it, waiting for g.gate to answer.
func refreshAtTheProvider(e *auth.Engine, g *fakeGrant, clock *fakeclock.Clock) {
	g.mu.Lock()
	g.gate, g.started = make(chan struct{}), make(chan struct{}, 1)
	g.mu.Unlock()
	clock.Advance(58 * time.Minute)
	readHub(e, context.Background())
	<-g.started
}

// savesStore is a lockingStore that records the access token of every save.
type savesStore struct {
	lockingStore
	smu   sync.Mutex // guards saved
	saved []string
}

func (s *savesStore) Save(ctx context.Context, key auth.StoreKey, tok *auth.Token) error {
	s.smu.Lock()
	s.saved = append(s.saved, tok.AccessToken.Reveal())
	s.smu.Unlock()
	return s.lockingStore.Save(ctx, key, tok)
}

func (s *savesStore) accessTokens() []string {
	s.smu.Lock()
	defer s.smu.Unlock()
	return append([]string(nil), s.saved...)
}

// Item 3: a machine that slept past the expiry (wall clock jumped, timers
// did not fire) must not be served the dead token.
func TestEngineNeverServesPastWallClockExpiry(t *testing.T) {
	clock := fakeclock.New(time.Time{})
	g := &fakeGrant{clock: clock, lifetime: time.Hour}
	e := newEngine(t, g, nil)
	first, err := readHub(e, context.Background())
	if err != nil {
		t.Fatal(err)
	}
	clock.Jump(2 * time.Hour) // suspend
	got, err := readHub(e, context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got == first {
		t.Fatalf("after waking 1 h past expiry the engine served the expired token %q", got)
	}
	if e.Valid() != true {
		t.Error("Valid() = false right after a fresh fetch")
	}
}

// jwtWithExp returns an unsigned compact JWT whose exp claim is exp.
func jwtWithExp(exp float64) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"none"}`)) + "." +
		enc.EncodeToString([]byte(fmt.Sprintf(`{"sub":"u","exp":%v}`, exp))) + ".sig"
}

// Item 4: a JWT's exp caps the lifetime the token response announced, and
// serving stops a margin before that expiry, not at it.
func TestEngineCapsExpiryByJWTExpAndStopsEarly(t *testing.T) {
	start := time.Date(2030, 1, 1, 0, 0, 0, 700_000_000, time.UTC) // x.7 s
	clock := fakeclock.New(start)
	// The provider says expires_in 2 s, but wrote exp in whole seconds
	// from the truncated issue time: the JWT dies at x+2.0 s, 1.3 s later.
	exp := float64(start.Truncate(time.Second).Add(2 * time.Second).Unix())
	n := 0
	e := newEngine(t, &fakeGrant{clock: clock}, func(c *auth.EngineConfig) {
		c.Fetch = func(context.Context, *auth.Token) (*auth.Token, error) {
			n++
			return &auth.Token{AccessToken: auth.NewSecret(jwtWithExp(exp) + fmt.Sprint(n)), Expiry: clock.Now().Add(2 * time.Second)}, nil
		}
	})
	first, err := readHub(e, context.Background())
	if err != nil {
		t.Fatal(err)
	}
	clock.Jump(1290 * time.Millisecond) // 10 ms before the JWT's exp
	got, err := readHub(e, context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got == first {
		t.Errorf("served the token 10 ms before its JWT exp (the response claimed 700 ms more); want a new one")
	}
}

// transientErr is a network-like failure.
type transientErr struct{}

func (transientErr) Error() string   { return "connection reset by peer" }
func (transientErr) Timeout() bool   { return false }
func (transientErr) Temporary() bool { return true }

var _ net.Error = transientErr{}

// Item 5: transient failures are retried while the callers' deadlines
// allow: a refresh that fails five times and then succeeds fails nobody.
func TestEngineTransientFailuresRetriedWithinDeadline(t *testing.T) {
	g := &fakeGrant{clock: fakeclock.New(time.Now()), lifetime: time.Hour}
	g.fail = []error{transientErr{}, transientErr{}, transientErr{}, transientErr{}, transientErr{}}
	e, err := auth.NewEngine(auth.EngineConfig{Fetch: g.fetch, Backoff: auth.Backoff{Min: time.Millisecond, Max: 4 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := readHub(e, ctx); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("a caller with 10 s left failed: %v", err)
	}
}

// Item 6: a service that rejects every token costs a backed-off handful of
// fetches, not one per request.
func TestEngineRejectionsAreBackedOff(t *testing.T) {
	clock := fakeclock.New(time.Time{})
	g := &fakeGrant{clock: clock, lifetime: time.Hour}
	e := newEngine(t, g, nil)
	for range 100 {
		v, err := readHub(e, context.Background())
		if err != nil {
			continue
		}
		e.Invalidate(auth.ServiceHub, v) // the service answered 401
	}
	if n := g.count(); n > 3 {
		t.Errorf("100 rejected requests within a second caused %d fetches, want at most 3", n)
	}
}

// Item 8: the refresh does not depend on a timer firing on time: a read
// past the refresh time starts it (the timer is late on a loaded machine).
func TestEngineReadPastRefreshTimeStartsRefresh(t *testing.T) {
	clock := fakeclock.New(time.Time{})
	g := &fakeGrant{clock: clock, lifetime: time.Second}
	e := newEngine(t, g, nil)
	first, err := readHub(e, context.Background())
	if err != nil {
		t.Fatal(err)
	}
	clock.Jump(600 * time.Millisecond) // the refresh timer has not fired yet
	got, err := readHub(e, context.Background())
	if err != nil || got != first {
		t.Fatalf("read at 0.6 s = %q, %v; want the still valid token", got, err)
	}
	eventually(t, "a refresh started by the read", func() bool { return g.count() >= 2 })
	eventually(t, "the refreshed token", func() bool {
		v, _ := readHub(e, context.Background())
		return v != first
	})
	if w := e.Stats().Waits; w > 1 {
		t.Errorf("%d callers waited; want none after the first token", w-1)
	}
}

// Item 9: an engine nobody reads stops refreshing; the next read refreshes.
func TestEngineIdleStopsRefreshing(t *testing.T) {
	clock := fakeclock.New(time.Time{})
	g := &fakeGrant{clock: clock, lifetime: time.Minute}
	e := newEngine(t, g, nil)
	if _, err := readHub(e, context.Background()); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		clock.Advance(time.Minute)
		auth.WaitFetches(e)
	}
	if n := g.count(); n > 2 {
		t.Errorf("an engine read once refreshed %d times in 10 idle lifetimes, want at most once more", n-1)
	}
	if _, err := readHub(e, context.Background()); err != nil {
		t.Fatalf("the read after idling: %v", err)
	}
}

// RefreshIdle keeps an unread engine refreshing, for services that want a
// fresh token at every moment.
func TestEngineRefreshIdle(t *testing.T) {
	clock := fakeclock.New(time.Time{})
	g := &fakeGrant{clock: clock, lifetime: time.Minute}
	e := newEngine(t, g, func(c *auth.EngineConfig) { c.RefreshIdle = true })
	if _, err := readHub(e, context.Background()); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		clock.Advance(time.Minute)
		auth.WaitFetches(e)
	}
	if n := g.count(); n < 10 {
		t.Errorf("RefreshIdle: %d fetches in 10 lifetimes, want one per lifetime", n)
	}
}

// A rejection reaches OnRejected with the service that rejected; when the
// fetch that follows fails, its error names that service.
func TestEngineRejectionNamesTheService(t *testing.T) {
	clock := fakeclock.New(time.Time{})
	g := &fakeGrant{clock: clock, lifetime: time.Hour}
	seen := make(chan auth.Service, 4)
	e := newEngine(t, g, func(c *auth.EngineConfig) { c.OnRejected = func(s auth.Service) { seen <- s } })
	v, err := readHub(e, context.Background())
	if err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	g.fail = []error{&auth.OAuthError{Code: "invalid_grant", StatusCode: 400}}
	g.mu.Unlock()
	e.Invalidate(auth.ServiceAccessManager, v)
	if s := <-seen; s != auth.ServiceAccessManager {
		t.Errorf("OnRejected got %q, want the access manager", s)
	}
	_, err = readHub(e, context.Background())
	if !errors.Is(err, auth.ErrInvalidGrant) || !strings.Contains(err.Error(), "access manager rejected") {
		t.Errorf("error = %v; want invalid_grant, naming the access manager", err)
	}
}

// A failed early refresh may set the next attempt past the serve time; the
// token is no less expired for it: Valid and the getters judge both.
func TestEngineRetryPastServeTimeIsNotValid(t *testing.T) {
	clock := fakeclock.New(time.Time{})
	g := &fakeGrant{clock: clock, lifetime: time.Minute} // refresh at 54 s, served until 58.5 s
	e := newEngine(t, g, func(c *auth.EngineConfig) { c.Backoff = auth.Backoff{Min: 4 * time.Second, Max: 4 * time.Second} })
	if _, err := readHub(e, context.Background()); err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	g.fail = []error{&auth.OAuthError{Code: "invalid_grant", StatusCode: 400}}
	g.mu.Unlock()
	clock.Jump(58 * time.Second)
	readHub(e, context.Background()) // starts the early refresh, which fails: next try at 60-62 s
	auth.WaitFetches(e)
	clock.Jump(time.Second) // 59 s: past the serve time, before the retry
	if e.Valid() {
		t.Error("Valid() = true past the serve time")
	}
}

// The edges below were found by review of engine v2; each test failed
// before its fix.

// A token held after a transient check failure is published (Current); the
// re-check that passes must not write to it while readers copy it.
func TestEngineHeldTokenIsNotWrittenWhileRead(t *testing.T) {
	var n atomic.Int32
	e, err := auth.NewEngine(auth.EngineConfig{
		Fetch: func(context.Context, *auth.Token) (*auth.Token, error) {
			return &auth.Token{AccessToken: auth.NewSecret("a"), RefreshToken: auth.NewSecret("r"), Expiry: time.Now().Add(time.Hour)}, nil
		},
		Check: func(context.Context, *auth.Token) (auth.Identity, error) {
			if n.Add(1) == 1 {
				return auth.Identity{}, auth.Transient(errors.New("key set unreachable"))
			}
			return auth.Identity{}, nil
		},
		Backoff: auth.Backoff{Min: 5 * time.Millisecond, Max: 5 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				_ = e.Current()
			}
		}
	}()
	_, err = e.Credentials(context.Background())
	close(stop)
	<-done
	if err != nil {
		t.Fatal(err)
	}
}

// A token saved before its check failed (to keep a rotated refresh token)
// is checked again when the next run finds it in the store: never served
// unchecked. Its refresh token is what the next fetch spends.
func TestEngineStoredTokenIsCheckedAgain(t *testing.T) {
	store := &auth.MemoryStore{}
	key := auth.StoreKey{Issuer: "https://issuer.example"}
	var fetched atomic.Int32
	var currents []*auth.Token
	cfg := auth.EngineConfig{
		Fetch: func(_ context.Context, cur *auth.Token) (*auth.Token, error) {
			n := fetched.Add(1)
			currents = append(currents, cur)
			return &auth.Token{AccessToken: auth.NewSecret(fmt.Sprint("other-user-", n)), RefreshToken: auth.NewSecret(fmt.Sprint("r", n)), Expiry: time.Now().Add(time.Hour)}, nil
		},
		Check: func(context.Context, *auth.Token) (auth.Identity, error) {
			return auth.Identity{}, auth.ErrUserMismatch
		},
		Store:    store,
		StoreKey: key,
	}
	e1, err := auth.NewEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e1.Credentials(context.Background()); !errors.Is(err, auth.ErrUserMismatch) {
		t.Fatalf("first run: %v, want ErrUserMismatch", err)
	}
	e1.Close()
	e2, err := auth.NewEngine(cfg) // the next run
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	c, err := e2.Credentials(context.Background())
	if err == nil {
		t.Fatalf("the next run serves %q, which failed its check", c.Token.AccessToken)
	}
	if len(currents) != 2 || currents[1] == nil || currents[1].RefreshToken.Reveal() != "r1" {
		t.Errorf("the next run's fetch started from %v, want the stored token's refresh token r1", currents)
	}
}

// slowDeleteStore holds Delete until gate is closed.
type slowDeleteStore struct {
	auth.MemoryStore
	gate chan struct{}
}

func (s *slowDeleteStore) Delete(ctx context.Context, k auth.StoreKey) error {
	<-s.gate
	return s.MemoryStore.Delete(ctx, k)
}

// A reader that comes while a logout is deleting the stored token must not
// take that token back from the store.
func TestEngineReaderDuringLogoutStaysLoggedOut(t *testing.T) {
	clock := fakeclock.New(time.Time{})
	store := &slowDeleteStore{gate: make(chan struct{})}
	g := &fakeGrant{clock: clock, lifetime: time.Hour, prefix: "user-a-"}
	e := newEngine(t, g, func(c *auth.EngineConfig) {
		c.Store, c.StoreKey = store, auth.StoreKey{Issuer: "https://issuer.example"}
		c.Fetch = func(ctx context.Context, cur *auth.Token) (*auth.Token, error) {
			if cur != nil {
				return nil, fmt.Errorf("%w: logged out", auth.ErrLoginRequired) // a device-code handler
			}
			return g.fetch(ctx, cur)
		}
	})
	if _, err := e.Credentials(context.Background()); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- e.Logout(context.Background()) }()
	for e.Current() != nil { // Logout has started; its Delete waits
		time.Sleep(time.Millisecond) // a wait for the other goroutine, not for an expiry
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	e.Credentials(ctx) // a reader during the logout
	close(store.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	auth.WaitFetches(e)
	if e.Valid() {
		t.Errorf("after Logout the engine serves %q again", e.Current().AccessToken)
	}
}

// A token that is due for refresh the moment it arrives (a cached token,
// handed out late) is refreshed with backoff, not once per read.
func TestEngineTokenDueOnArrivalIsBackedOff(t *testing.T) {
	clock := fakeclock.New(time.Time{})
	now := clock.Now()
	enc := base64.RawURLEncoding
	cached := enc.EncodeToString([]byte(`{"alg":"none"}`)) + "." +
		enc.EncodeToString([]byte(fmt.Sprintf(`{"iat":%d,"exp":%d}`, now.Add(-56*time.Minute).Unix(), now.Add(4*time.Minute).Unix()))) + ".s"
	var fetches atomic.Int32
	e := newEngine(t, &fakeGrant{clock: clock}, func(c *auth.EngineConfig) {
		c.Fetch = func(context.Context, *auth.Token) (*auth.Token, error) {
			fetches.Add(1)
			return &auth.Token{AccessToken: auth.NewSecret(cached)}, nil
		}
	})
	for range 200 {
		if _, err := e.Credentials(context.Background()); err != nil {
			t.Fatal(err)
		}
		auth.WaitFetches(e)
	}
	if n := fetches.Load(); n > 3 {
		t.Errorf("200 reads of a token due on arrival caused %d fetches, want a few", n)
	}
}

// An expiry far in the future (year 9999 standing for "never") is served.
func TestEngineFarFutureExpiry(t *testing.T) {
	var fetches atomic.Int32
	e := newEngine(t, &fakeGrant{clock: fakeclock.New(time.Time{})}, func(c *auth.EngineConfig) {
		c.Clock = nil
		c.Fetch = func(context.Context, *auth.Token) (*auth.Token, error) {
			fetches.Add(1)
			return &auth.Token{AccessToken: auth.NewSecret("x"), Expiry: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)}, nil
		}
	})
	for range 5 {
		if _, err := e.Credentials(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if n := fetches.Load(); n != 1 || !e.Valid() {
		t.Errorf("%d fetches, Valid %v; want 1 fetch and a valid token", n, e.Valid())
	}
}

// A rejection that comes while an early refresh runs counts for the
// rejection streak of the token that refresh brings.
func TestEngineRejectionDuringEarlyRefreshKeepsStreak(t *testing.T) {
	clock := fakeclock.New(time.Time{})
	g := &fakeGrant{clock: clock, lifetime: time.Hour}
	e := newEngine(t, g, func(c *auth.EngineConfig) { c.Backoff = auth.Backoff{Min: 10 * time.Second, Max: 10 * time.Second} })
	v, err := readHub(e, context.Background())
	if err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	g.gate, g.started = make(chan struct{}), make(chan struct{}, 1)
	g.mu.Unlock()
	clock.Jump(56 * time.Minute)
	readHub(e, context.Background()) // starts the early refresh
	<-g.started
	e.Invalidate(auth.ServiceHub, v) // rejected while the refresh runs
	close(g.gate)
	v2, err := readHub(e, context.Background())
	if err != nil || v2 == v {
		t.Fatalf("after the refresh: %q, %v", v2, err)
	}
	e.Invalidate(auth.ServiceHub, v2) // the new token is rejected at once: deferred
	if s := e.Stats(); s.RejectionsDeferred != 1 {
		t.Errorf("stats %+v: the second rejection in a row was not deferred", s)
	}
}

// A logout whose revocation uses up the caller's deadline (a provider that
// never answers) still deletes the stored login: the local logout happens
// whatever the provider does.
func TestEngineLogoutDeletesWhenRevocationHangs(t *testing.T) {
	clock := fakeclock.New(time.Time{})
	g := &fakeGrant{clock: clock, lifetime: time.Hour}
	store, err := auth.NewFileStore(auth.FileStoreConfig{Dir: filepath.Join(t.TempDir(), "tokens"), Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	key := auth.StoreKey{Issuer: "https://issuer.example"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := newEngine(t, g, func(c *auth.EngineConfig) {
		c.Store, c.StoreKey = store, key
		c.Revoke = func(rctx context.Context, _ *auth.Token) error {
			cancel() // the caller's deadline passes while the provider is silent
			<-rctx.Done()
			return rctx.Err()
		}
	})
	if _, err := readHub(e, context.Background()); err != nil {
		t.Fatal(err)
	}
	err = e.Logout(ctx)
	if !errors.Is(err, auth.ErrNotRevoked) {
		t.Errorf("Logout = %v, want ErrNotRevoked", err)
	}
	if tok, err := store.Load(context.Background(), key); tok != nil || err != nil {
		t.Errorf("the stored login survived the logout: %v, %v", tok != nil, err)
	}
}

// blockingHandler is a slog.Handler whose records wait at a gate: a slow
// log sink.
type blockingHandler struct {
	entered chan struct{}
	gate    chan struct{}
}

func (h *blockingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *blockingHandler) Handle(context.Context, slog.Record) error {
	select {
	case h.entered <- struct{}{}:
	default:
	}
	<-h.gate
	return nil
}
func (h *blockingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *blockingHandler) WithGroup(string) slog.Handler      { return h }

// A slow log sink never stalls the engine: records are written once its
// mutex is released (issue 20, item 10). Before, a failed fetch logged
// under the mutex, and every reader, waiter and Stats waited for the sink.
func TestEngineSlowLoggerDoesNotStallTheEngine(t *testing.T) {
	h := &blockingHandler{entered: make(chan struct{}, 1), gate: make(chan struct{})}
	defer close(h.gate)
	e, err := auth.NewEngine(auth.EngineConfig{
		Fetch:  func(context.Context, *auth.Token) (*auth.Token, error) { return nil, auth.ErrInvalidGrant },
		Logger: slog.New(h),
	})
	if err != nil {
		t.Fatal(err)
	}
	go e.HubRequestHeaders(context.Background()) //nolint:errcheck // fails by design
	<-h.entered                                  // the failure's record is being written
	done := make(chan struct{})
	go func() {
		e.Stats()
		e.HubRequestHeaders(context.Background()) //nolint:errcheck // the last failure, served from memory
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second): // a deadlock detector, not a timing claim
		t.Fatal("Stats and a read waited for the log sink")
	}
}

// OnRejected runs one call at a time: a burst of rejections while it is
// slow costs one goroutine, not one per rejection (issue 20, item 10).
func TestEngineOnRejectedIsCoalesced(t *testing.T) {
	var calls, running, most atomic.Int32
	gate := make(chan struct{})
	n := 0
	e, err := auth.NewEngine(auth.EngineConfig{
		Fetch: func(context.Context, *auth.Token) (*auth.Token, error) {
			n++
			return &auth.Token{AccessToken: auth.NewSecret(fmt.Sprint("at-", n)), Expiry: time.Now().Add(time.Hour)}, nil
		},
		OnRejected: func(auth.Service) {
			r := running.Add(1)
			for m := most.Load(); r > m && !most.CompareAndSwap(m, r); m = most.Load() {
			}
			calls.Add(1)
			<-gate
			running.Add(-1)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	h, _ := e.HubRequestHeaders(context.Background())
	e.Invalidate(auth.ServiceHub, h.Get("Authorization")) // drops it
	eventually(t, "the first OnRejected call", func() bool { return calls.Load() == 1 })
	h, _ = e.HubRequestHeaders(context.Background()) // at-2, whose rejections are deferred
	before := runtime.NumGoroutine()
	for range 200 {
		e.Invalidate(auth.ServiceHub, h.Get("Authorization"))
	}
	if g := runtime.NumGoroutine(); g > before+2 {
		t.Errorf("200 rejections while OnRejected was slow left %d more goroutines", g-before)
	}
	close(gate)
	eventually(t, "OnRejected to finish", func() bool { return running.Load() == 0 && calls.Load() >= 2 })
	if c, m := calls.Load(), most.Load(); c != 2 || m != 1 {
		t.Errorf("OnRejected ran %d times, %d at once; want 2 (the first, and one for the burst), one at a time", c, m)
	}
}

// A token whose refresh fails is served until a quarter of its refresh
// margin before its expiry, at most 5 s before (margin.go): an hour-long
// token (margin 5 min, a quarter 75 s) until 5 s before, not a moment
// longer.
func TestEngineServesUntilFiveSecondsBeforeExpiry(t *testing.T) {
	clock := fakeclock.New(time.Time{})
	g := &fakeGrant{clock: clock, lifetime: time.Hour}
	e := newEngine(t, g, func(c *auth.EngineConfig) { c.Backoff = auth.Backoff{Min: time.Hour, Max: time.Hour} })
	if _, err := readHub(e, context.Background()); err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	g.fail = []error{&auth.OAuthError{Code: "invalid_grant", StatusCode: 400}}
	g.mu.Unlock()
	clock.Jump(time.Hour - 6*time.Second)
	readHub(e, context.Background()) // the refresh fails; the next try is an hour away
	auth.WaitFetches(e)
	clock.Jump(time.Second - time.Millisecond) // 5.001 s before expiry
	if !e.Valid() {
		t.Error("Valid() = false 5.001 s before expiry, want the token served")
	}
	clock.Jump(2 * time.Millisecond) // 4.999 s before
	if e.Valid() {
		t.Error("Valid() = true 4.999 s before expiry, want it no longer served")
	}
}

// An engine dropped without Close refreshes at most once more and is then
// collected (NewEngine's doc): its scheduled refresh finds it unread, and
// nothing else holds it.
func TestEngineDroppedWithoutCloseIsCollected(t *testing.T) {
	clock := fakeclock.New(time.Time{})
	g := &fakeGrant{clock: clock, lifetime: time.Hour}
	collected := make(chan struct{})
	wp := func() weak.Pointer[auth.Engine] {
		e, err := auth.NewEngine(auth.EngineConfig{Fetch: g.fetch, Clock: clock})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := readHub(e, context.Background()); err != nil {
			t.Fatal(err)
		}
		runtime.AddCleanup(e, func(ch chan struct{}) { close(ch) }, collected)
		return weak.Make(e)
	}()
	for range 3 { // three lifetimes pass; each refresh ends before the next hour
		clock.Advance(time.Hour)
		if e := wp.Value(); e != nil {
			auth.WaitFetches(e)
		}
	}
	deadline := time.After(10 * time.Second)
	for done := false; !done; {
		runtime.GC()
		select {
		case <-collected:
			done = true
		case <-deadline:
			t.Fatal("the dropped engine was never collected")
		case <-time.After(10 * time.Millisecond):
		}
	}
	if n := g.count(); n > 2 {
		t.Errorf("%d fetches, want at most 2: the first, and one more after the engine was dropped", n)
	}
}
