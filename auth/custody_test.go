package auth_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/internal/fakeclock"
)

var custodyKey = auth.StoreKey{Issuer: "https://idp.test", ClientID: "cli", Scopes: []string{"openid", "offline_access"}}

// flakyStore is a MemoryStore whose saves fail while failSaves is set (of
// every token, or of the one whose refresh token is failToken) and whose
// loads can be held at a gate.
type flakyStore struct {
	auth.MemoryStore
	failSaves  atomic.Bool
	failToken  string
	saveErrors atomic.Int32
	loadGate   chan struct{} // when set, each Load waits for it
	loading    chan struct{} // when set, receives once per Load, before the gate
}

func (s *flakyStore) Save(ctx context.Context, k auth.StoreKey, t *auth.Token) error {
	if s.failSaves.Load() && (s.failToken == "" || t.RefreshToken.Reveal() == s.failToken) {
		s.saveErrors.Add(1)
		return errors.New("disk full")
	}
	return s.MemoryStore.Save(ctx, k, t)
}

func (s *flakyStore) Load(ctx context.Context, k auth.StoreKey) (*auth.Token, error) {
	if s.loading != nil {
		s.loading <- struct{}{}
	}
	if s.loadGate != nil {
		<-s.loadGate
	}
	return s.MemoryStore.Load(ctx, k)
}

// lockingStore is a MemoryStore that is also a Locker (one mutex), as a
// FileStore or the Redis store is.
type lockingStore struct {
	auth.MemoryStore
	mu sync.Mutex
}

func (s *lockingStore) Lock(context.Context, auth.StoreKey) (func(), error) {
	s.mu.Lock()
	return s.mu.Unlock, nil
}

// Item 2 of the custody issue: a failed save of a rotated refresh token
// must not make the next refresh spend the older stored one.
func TestCustodyFailedSaveNeverSpendsTheOlderStoredToken(t *testing.T) {
	clock := fakeclock.New(time.Time{})
	store := &flakyStore{failToken: "refresh-2"} // the disk fills up as refresh-2 arrives
	g := &fakeGrant{clock: clock, lifetime: time.Hour}
	e := newEngine(t, g, func(c *auth.EngineConfig) { c.Store, c.StoreKey = store, custodyKey })
	accessToken(t, e) // refresh-1, saved

	store.failSaves.Store(true)
	clock.Jump(2 * time.Hour) // past the expiry; no background refresh in between
	if got := accessToken(t, e); got != "Bearer access-2" {
		t.Fatalf("second token: %q", got)
	}
	if store.saveErrors.Load() < 2 {
		t.Errorf("a failed save was tried %d times, want it retried", store.saveErrors.Load())
	}
	if st := e.Stats(); st.SaveFailures == 0 {
		t.Errorf("Stats.SaveFailures = 0 after a save that failed: %+v", st)
	}

	store.failSaves.Store(false)
	clock.Jump(2 * time.Hour) // past the expiry; no background refresh in between
	accessToken(t, e)
	if got := g.currents[2].RefreshToken.Reveal(); got != "refresh-2" {
		t.Fatalf("the third fetch spent %q; want refresh-2, the newer token held in memory (refresh-1 is spent)", got)
	}
	if saved, _ := store.MemoryStore.Load(context.Background(), custodyKey); saved == nil || saved.RefreshToken.Reveal() != "refresh-3" {
		t.Fatalf("store holds %v, want refresh-3", saved)
	}
}

// Item 3: Close must not drop a token the provider issued while it closed.
func TestCustodyCloseSavesWhatTheProviderIssued(t *testing.T) {
	clock := fakeclock.New(time.Time{})
	store := &lockingStore{}
	g := &fakeGrant{clock: clock, lifetime: time.Hour}
	e := newEngine(t, g, func(c *auth.EngineConfig) { c.Store, c.StoreKey = store, custodyKey })
	accessToken(t, e)

	g.mu.Lock()
	g.gate, g.started = make(chan struct{}), make(chan struct{}, 1)
	g.mu.Unlock()
	clock.Advance(2 * time.Hour)
	go e.HubRequestHeaders(context.Background()) //nolint:errcheck // ends with ErrClosed
	<-g.started                                  // the refresh token is at the provider
	closed := make(chan struct{})
	go func() { e.Close(); close(closed) }()
	eventually(t, "Close to wait for the refresh", func() bool { return e.String() == "auth.Engine{closed}" })
	close(g.gate) // the provider answers
	<-closed
	saved, _ := store.Load(context.Background(), custodyKey)
	if saved == nil || saved.RefreshToken.Reveal() != "refresh-2" {
		t.Fatalf("after Close the store holds %v, want refresh-2: the provider rotated refresh-1 away", saved)
	}
}

// Close gives a refresh already at the provider 5 s to answer; one that
// takes longer is cancelled and leaves its spend record, so no engine
// presents that refresh token again: a successor that can only refresh
// reports the login lost, presenting nothing (engine.go, Close).
func TestCustodyCloseAbandonsASlowRefreshLeavingItsSpendRecord(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out Close's 5 s grace")
	}
	clock := fakeclock.New(time.Time{})
	store := &lockingStore{}
	g := &fakeGrant{clock: clock, lifetime: time.Hour}
	e := newEngine(t, g, func(c *auth.EngineConfig) { c.Store, c.StoreKey = store, custodyKey })
	accessToken(t, e)
	g.mu.Lock()
	g.gate, g.started = make(chan struct{}), make(chan struct{}, 1) // the provider never answers
	g.mu.Unlock()
	defer close(g.gate)
	clock.Advance(2 * time.Hour)
	go e.HubRequestHeaders(context.Background()) //nolint:errcheck // ends with ErrClosed
	<-g.started                                  // refresh-1 is at the provider
	e.Close()

	e2, presented := refreshOnlySuccessor(t, clock, store)
	clock.Advance(time.Hour) // past the spend record's deadline
	_, err := e2.HubRequestHeaders(context.Background())
	if !errors.Is(err, auth.ErrLoginLost) {
		t.Fatalf("err = %v, want ErrLoginLost: the refresh token may have been consumed", err)
	}
	if len(*presented) != 0 {
		t.Fatalf("the successor presented %v", *presented)
	}
}

// refreshOnlySuccessor is an engine on store whose grant can only refresh
// (a device-code login): it records the refresh tokens presented to it,
// and fails, since no test expects it to be called.
func refreshOnlySuccessor(t *testing.T, clock *fakeclock.Clock, store auth.Store) (*auth.Engine, *[]string) {
	t.Helper()
	presented := new([]string)
	e, err := auth.NewEngine(auth.EngineConfig{Clock: clock, Store: store, StoreKey: custodyKey,
		Fetch: func(_ context.Context, cur *auth.Token) (*auth.Token, error) {
			if cur == nil || cur.RefreshToken.IsZero() {
				return nil, fmt.Errorf("%w: no refresh token", auth.ErrLoginRequired)
			}
			*presented = append(*presented, cur.RefreshToken.Reveal())
			return nil, errors.New("must not be called")
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e, presented
}

// Item 4: a decorator is a Locker only when what it wraps is one.
func TestEncryptedStoreIsALockerOnlyOverALocker(t *testing.T) {
	key := auth.EncryptionKey{ID: "k1", Key: auth.NewSecret("0123456789abcdef0123456789abcdef")}
	for _, tc := range []struct {
		name   string
		inner  auth.Store
		locker bool
	}{
		{"memory", &auth.MemoryStore{}, false},
		{"locking", &lockingStore{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := auth.NewEncryptedStore(auth.EncryptedStoreConfig{Store: tc.inner, Keys: []auth.EncryptionKey{key}})
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := s.(auth.Locker); ok != tc.locker {
				t.Fatalf("EncryptedStore over %T is a Locker: %v, want %v", tc.inner, ok, tc.locker)
			}
		})
	}
}

// countingSource is an oauth2.TokenSource that counts its calls.
type countingTokenSource struct {
	n   atomic.Int32
	tok *oauth2.Token
}

func (s *countingTokenSource) Token() (*oauth2.Token, error) {
	s.n.Add(1)
	return s.tok, nil
}

// Item 6: a token without an expiry never expires and is never fetched
// again on read (x/oauth2's convention), on the system clock's fast path.
func TestEngineNoExpiryIsNotFetchedOnRead(t *testing.T) {
	t.Run("StaticTokenSource", func(t *testing.T) {
		src := &countingTokenSource{tok: &oauth2.Token{AccessToken: "gh-token", TokenType: "Bearer"}}
		e, err := auth.NewEngine(auth.EngineConfig{Fetch: auth.FetchFromTokenSource(oauth2.ReuseTokenSource(nil, src))})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		for range 100 {
			if _, err := e.HubRequestHeaders(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		auth.WaitFetches(e)
		if n := src.n.Load(); n != 1 {
			t.Fatalf("100 reads made %d token-source calls, want 1", n)
		}
	})
	t.Run("Initial", func(t *testing.T) {
		var fetches atomic.Int32
		e, err := auth.NewEngine(auth.EngineConfig{
			Fetch:   func(context.Context, *auth.Token) (*auth.Token, error) { fetches.Add(1); return nil, errors.New("no") },
			Initial: &auth.Token{AccessToken: auth.NewSecret("static")},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		for range 100 {
			if _, err := e.HubRequestHeaders(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		auth.WaitFetches(e)
		if n := fetches.Load(); n != 0 {
			t.Fatalf("100 reads of a token without expiry made %d fetches, want 0", n)
		}
	})
}

// Item 9: an Invalidate during a refresh that waits in Store.Load must not
// race with the refresh (run with -race).
func TestEngineInvalidateDuringStoreLoadIsRaceFree(t *testing.T) {
	clock := fakeclock.New(time.Time{})
	store := &flakyStore{}
	g := &fakeGrant{clock: clock, lifetime: time.Hour}
	e := newEngine(t, g, func(c *auth.EngineConfig) { c.Store, c.StoreKey = store, custodyKey })
	accessToken(t, e)
	store.loadGate, store.loading = make(chan struct{}), make(chan struct{}, 1)
	clock.Advance(55 * time.Minute) // due for refresh, still valid
	accessToken(t, e)               // starts the early refresh
	<-store.loading
	e.Invalidate(auth.ServiceHub, "")
	close(store.loadGate)
	auth.WaitFetches(e)
	if got := accessToken(t, e); got != "Bearer access-2" {
		t.Fatalf("after the refresh: %q", got)
	}
}

// uncertain is a failure after the request may have reached the provider:
// the connection was reset while waiting for the answer.
var uncertain = &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}

// spendAndStop runs an engine on store whose one fetch fails with err,
// then closes it while it waits to retry (on the fake clock, which the
// test does not advance): a process that stopped after one attempt.
func spendAndStop(t *testing.T, clock *fakeclock.Clock, store auth.Store, err error) *fakeGrant {
	t.Helper()
	g := &fakeGrant{clock: clock, lifetime: time.Hour, fail: []error{err}}
	e := newEngine(t, g, func(c *auth.EngineConfig) { c.Store, c.StoreKey = store, custodyKey })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.HubRequestHeaders(ctx); close(done) }() //nolint:errcheck // fails by design
	eventually(t, "the first attempt", func() bool { return g.count() == 1 })
	cancel()
	<-done
	e.Close()
	return g
}

// The spend protocol: a process (here an engine) that presented a refresh
// token and never saved what came back leaves a spend record; another one
// never presents that refresh token again. It makes a full grant where the
// grant can, or reports a lost login.
func TestCustodySpendRecordOfAGoneOwner(t *testing.T) {
	clock := fakeclock.New(time.Time{})
	store := &lockingStore{}
	seed := &auth.Token{AccessToken: auth.NewSecret("old"), RefreshToken: auth.NewSecret("refresh-0"), Expiry: clock.Now().Add(-time.Minute)}
	if err := store.Save(context.Background(), custodyKey, seed); err != nil {
		t.Fatal(err)
	}
	// The first owner presents refresh-0; the answer never arrives (the
	// process died, or the connection broke after the request left).
	g1 := spendAndStop(t, clock, store, uncertain)
	if got := g1.currents[0].RefreshToken.Reveal(); got != "refresh-0" {
		t.Fatalf("the first owner presented %q", got)
	}

	t.Run("full grant", func(t *testing.T) {
		g2 := &fakeGrant{clock: clock, lifetime: time.Hour, prefix: "next-"}
		e2 := newEngine(t, g2, func(c *auth.EngineConfig) { c.Store, c.StoreKey = store, custodyKey })
		if got := accessToken(t, e2); got != "Bearer next-access-1" {
			t.Fatalf("got %q", got)
		}
		if cur := g2.currents[0]; cur != nil && !cur.RefreshToken.IsZero() {
			t.Fatalf("the successor presented %q, which the gone owner had spent", cur.RefreshToken.Reveal())
		}
		// The full grant's token replaced the record: the next refresh
		// spends it as usual.
		clock.Advance(2 * time.Hour)
		accessToken(t, e2)
		if got := g2.currents[1].RefreshToken.Reveal(); got != "next-refresh-1" {
			t.Fatalf("after the full grant the next refresh spent %q", got)
		}
	})
}

func TestCustodySpendRecordLostLogin(t *testing.T) {
	clock := fakeclock.New(time.Time{})
	store := &lockingStore{}
	seed := &auth.Token{AccessToken: auth.NewSecret("old"), RefreshToken: auth.NewSecret("refresh-0"), Expiry: clock.Now().Add(-time.Minute)}
	store.Save(context.Background(), custodyKey, seed)
	spendAndStop(t, clock, store, uncertain)

	// A grant that can only refresh (a device-code login) reports the loss.
	e2, presented := refreshOnlySuccessor(t, clock, store)
	_, err := e2.HubRequestHeaders(context.Background())
	if !errors.Is(err, auth.ErrLoginRequired) || !errors.Is(err, auth.ErrLoginLost) {
		t.Fatalf("err = %v, want ErrLoginRequired and ErrLoginLost", err)
	}
	if len(*presented) != 0 {
		t.Fatalf("presented %v", *presented)
	}
}

// A failure with a definite answer (the provider answered, without
// tokens) clears the spend record: the token was not consumed, and other
// processes may spend it.
func TestCustodyDefiniteFailureClearsTheSpendRecord(t *testing.T) {
	clock := fakeclock.New(time.Time{})
	store := &lockingStore{}
	seed := &auth.Token{AccessToken: auth.NewSecret("old"), RefreshToken: auth.NewSecret("refresh-0"), Expiry: clock.Now().Add(-time.Minute)}
	store.Save(context.Background(), custodyKey, seed)
	spendAndStop(t, clock, store, &auth.OAuthError{Code: "server_error", StatusCode: 503})
	g2 := &fakeGrant{clock: clock, lifetime: time.Hour, prefix: "next-"}
	e2 := newEngine(t, g2, func(c *auth.EngineConfig) { c.Store, c.StoreKey = store, custodyKey })
	accessToken(t, e2)
	if got := g2.currents[0].RefreshToken.Reveal(); got != "refresh-0" {
		t.Fatalf("after a 503 the successor presented %q, want refresh-0 (not consumed)", got)
	}
}

// A store that cannot record the spend is not spent from: the engine
// serves the still valid token and retries.
func TestCustodyNoSpendWithoutARecord(t *testing.T) {
	clock := fakeclock.New(time.Time{})
	store := &flakyStore{}
	g := &fakeGrant{clock: clock, lifetime: time.Hour}
	e := newEngine(t, g, func(c *auth.EngineConfig) { c.Store, c.StoreKey = store, custodyKey })
	accessToken(t, e)
	store.failSaves.Store(true)
	clock.Advance(55 * time.Minute)
	accessToken(t, e) // early refresh starts and fails to record
	eventually(t, "the early refresh to fail", func() bool { return e.Stats().Failures > 0 })
	if n := g.count(); n != 1 {
		t.Fatalf("%d fetches: a refresh token was presented without a spend record", n)
	}
	if got := accessToken(t, e); got != "Bearer access-1" {
		t.Fatalf("the valid token is not served: %q", got)
	}
}

// The store loses its data (Redis restarted without persistence) right
// after one process rotated the shared refresh token: another process,
// still holding the older token, saves it back but does not spend it —
// the first one restores the newer token when its own is due, and only
// that one is spent. Before, the second process spent the older refresh
// token, which the provider had already rotated away.
func TestCustodyStoreLosesItsDataAfterARotation(t *testing.T) {
	clock := fakeclock.New(time.Time{})
	store := &lockingStore{}
	// 4-minute tokens: due at 3m36s (a) and 3m50s (b, a smaller margin),
	// so that a rotates first.
	gA := &fakeGrant{clock: clock, lifetime: 4 * time.Minute, prefix: "a-"}
	gB := &fakeGrant{clock: clock, lifetime: 4 * time.Minute, prefix: "b-"}
	a := newEngine(t, gA, func(c *auth.EngineConfig) { c.Store, c.StoreKey = store, custodyKey })
	b := newEngine(t, gB, func(c *auth.EngineConfig) {
		c.Store, c.StoreKey, c.Margin = store, custodyKey, auth.Margin{Min: 10 * time.Second, Max: 10 * time.Second}
	})
	accessToken(t, a)                                         // a-refresh-1, saved
	if got := accessToken(t, b); got != "Bearer a-access-1" { // from the store
		t.Fatalf("b: %q", got)
	}
	clock.Advance(3*time.Minute + 40*time.Second)
	accessToken(t, a) // a rotates: a-refresh-2, due at 7m16s
	auth.WaitFetches(a)
	if gA.count() != 2 {
		t.Fatalf("a fetched %d times", gA.count())
	}
	store.Delete(context.Background(), custodyKey) // Redis restarts empty

	clock.Advance(15 * time.Second) // 3m55s
	accessToken(t, b)               // b is due: finds nothing stored
	eventually(t, "b's refresh to fail", func() bool { return b.Stats().Failures > 0 })
	if n := gB.count(); n != 0 {
		t.Fatalf("b spent %q, which a had rotated away", gB.currents[0].RefreshToken.Reveal())
	}
	if saved, _ := store.Load(context.Background(), custodyKey); saved == nil || saved.RefreshToken.Reveal() != "a-refresh-1" {
		t.Fatalf("b did not save its token back: %v", saved)
	}
	accessToken(t, a) // a is in use: it will come due
	// a comes due within b's wait (until 7m55s): it finds the older token
	// and saves its own back.
	clock.Advance(3*time.Minute + 25*time.Second) // 7m20s
	eventually(t, "a to save its newer token back", func() bool {
		saved, _ := store.Load(context.Background(), custodyKey)
		return saved != nil && saved.Generation() >= 2
	})
	// Past the wait, the newest token is spent, once, by one of them.
	clock.Advance(40 * time.Second)
	for _, e := range []*auth.Engine{a, b} {
		if got := accessToken(t, e); got != "Bearer a-access-3" && got != "Bearer b-access-1" {
			t.Fatalf("after the wait: %q", got)
		}
	}
	spent := map[string]int{}
	for _, g := range []*fakeGrant{gA, gB} {
		g.mu.Lock()
		for _, c := range g.currents {
			if c != nil {
				spent[c.RefreshToken.Reveal()]++
			}
		}
		g.mu.Unlock()
	}
	if spent["a-refresh-1"] != 1 || spent["a-refresh-2"] != 1 {
		t.Errorf("refresh tokens presented: %v; want a-refresh-1 and a-refresh-2 once each", spent)
	}
}

// flakyLockingStore is a flakyStore that is also a Locker.
type flakyLockingStore struct {
	flakyStore
	mu sync.Mutex
}

func (s *flakyLockingStore) Lock(context.Context, auth.StoreKey) (func(), error) {
	s.mu.Lock()
	return s.mu.Unlock, nil
}

// A process whose save failed (Redis away a moment) is alive and holds the
// newer token: another one that finds its spend record waits for it —
// never reports the login lost, never presents the spent token — and the
// first one saves the token in the background once the store takes it.
func TestCustodyWaitsForALiveOwnerWhoseSaveFailed(t *testing.T) {
	clock := fakeclock.New(time.Time{})
	store := &flakyLockingStore{flakyStore: flakyStore{failToken: "a-refresh-2"}}
	gA := &fakeGrant{clock: clock, lifetime: 4 * time.Minute, prefix: "a-"}
	gB := &fakeGrant{clock: clock, lifetime: 4 * time.Minute, prefix: "b-"}
	a := newEngine(t, gA, func(c *auth.EngineConfig) { c.Store, c.StoreKey = store, custodyKey })
	b := newEngine(t, gB, func(c *auth.EngineConfig) {
		c.Store, c.StoreKey, c.Margin = store, custodyKey, auth.Margin{Min: 10 * time.Second, Max: 10 * time.Second}
	})
	accessToken(t, a)
	accessToken(t, b)
	store.failSaves.Store(true)
	clock.Advance(3*time.Minute + 40*time.Second)
	accessToken(t, a) // a rotates to a-refresh-2 and cannot save it
	eventually(t, "a's save to fail", func() bool { return a.Stats().SaveFailures > 0 })

	clock.Advance(15 * time.Second)
	accessToken(t, b) // b is due and finds a's spend record
	eventually(t, "b to wait", func() bool { return b.Stats().Failures > 0 })
	if gB.count() != 0 {
		t.Fatalf("b presented %q while a, alive, held its answer", gB.currents[0].RefreshToken.Reveal())
	}
	store.failSaves.Store(false) // the store is back: a's token is saved in the background
	eventually(t, "a's token to be saved", func() bool {
		saved, _ := store.MemoryStore.Load(context.Background(), custodyKey)
		return saved != nil && saved.RefreshToken.Reveal() == "a-refresh-2"
	})
	clock.Advance(5 * time.Second)
	if got := accessToken(t, b); got != "Bearer a-access-2" {
		t.Fatalf("b: %q, want a's saved token", got)
	}
	if st := b.Stats(); st.LostLogins != 0 {
		t.Errorf("b counted %d lost logins", st.LostLogins)
	}
}

// After the store lost its data, nothing is spent for one token lifetime,
// at most 5 minutes (README, "Redis away"): with 2-hour tokens, the wait
// ends after 5 minutes, not 2 hours.
func TestCustodyReseedWaitIsAtMostFiveMinutes(t *testing.T) {
	clock := fakeclock.New(time.Time{})
	store := &lockingStore{}
	g := &fakeGrant{clock: clock, lifetime: 2 * time.Hour}
	e := newEngine(t, g, func(c *auth.EngineConfig) {
		c.Store, c.StoreKey = store, custodyKey
		c.Margin = auth.Margin{Min: 30 * time.Minute, Max: 30 * time.Minute} // due at 1h30m
		c.Backoff = auth.Backoff{Min: 10 * time.Second, Max: 10 * time.Second}
	})
	accessToken(t, e)                              // refresh-1, saved
	store.Delete(context.Background(), custodyKey) // Redis restarts empty
	clock.Advance(90*time.Minute + time.Second)
	accessToken(t, e) // due: finds nothing stored, saves its token back and waits
	eventually(t, "the refresh to find the store empty", func() bool { return e.Stats().Failures > 0 })
	// step lets the retry that is due run, and waits for its outcome.
	step := func() {
		failures := e.Stats().Failures
		clock.Advance(10 * time.Second)
		eventually(t, "the retry", func() bool { return e.Stats().Failures > failures || g.count() > 1 })
	}
	for range 23 { // within 4 minutes of finding the store empty
		step()
	}
	if n := g.count(); n != 1 {
		t.Fatalf("%d fetches within 4 minutes of finding the store empty, want none after the first", n)
	}
	for range 18 { // 3 more minutes: past the 5-minute cap
		if g.count() > 1 {
			break
		}
		step()
	}
	if n := g.count(); n != 2 {
		t.Fatalf("%d fetches 7 minutes after finding the store empty, want the refresh made once the 5 minutes passed", n)
	}
}
