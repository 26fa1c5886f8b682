package redisstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/auth/redisstore"
	"github.com/authkit-go/authkit/authtest"
	"github.com/authkit-go/authkit/handlers"
)

// envRedis names the Redis of the tests (default 127.0.0.1:6379). Without
// one the tests skip, except under CI=true, where they fail: CI never
// passes without running them.
const envRedis = "AUTHKIT_REDIS_ADDR"

// testClient connects to the tests' Redis and removes the test's keys
// (under its own prefix only) when it ends.
func testClient(t *testing.T) (redis.UniversalClient, string) {
	t.Helper()
	addr := os.Getenv(envRedis)
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second, ContextTimeoutEnabled: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		if os.Getenv("CI") == "true" {
			t.Fatalf("Redis at %s does not answer (%v); CI needs it: start it (see IDP.md) or set %s", addr, err, envRedis)
		}
		t.Skipf("no Redis at %s (%v): start redis-server or set %s to run these tests", addr, err, envRedis)
	}
	b := make([]byte, 6)
	rand.Read(b)
	prefix := "authkit-test:" + hex.EncodeToString(b) + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		keys, _ := rdb.Keys(ctx, prefix+"*").Result()
		if len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
		rdb.Close()
	})
	return rdb, prefix
}

func newStore(t *testing.T, rdb redis.UniversalClient, prefix string, mod func(*redisstore.Config)) (*redisstore.Store, *authtest.LogBuffer) {
	t.Helper()
	logs := &authtest.LogBuffer{}
	cfg := redisstore.Config{Client: rdb, Prefix: prefix, Logger: slog.New(slog.NewTextHandler(logs, nil))}
	if mod != nil {
		mod(&cfg)
	}
	s, err := redisstore.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, logs
}

var key = auth.StoreKey{Issuer: "https://idp.example", ClientID: "cli", Scopes: []string{"openid", "offline_access"}}

func token(rt string, refreshExpiry time.Time) *auth.Token {
	return &auth.Token{AccessToken: auth.NewSecret("at-" + rt), TokenType: "Bearer", RefreshToken: auth.NewSecret(rt),
		Expiry: time.Now().Add(time.Hour).Round(time.Second), RefreshExpiry: refreshExpiry}
}

// lockSave saves tok as the engine does: under the lease.
func lockSave(t *testing.T, s *redisstore.Store, tok *auth.Token) {
	t.Helper()
	ctx := context.Background()
	unlock, err := s.Lock(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if err := s.Save(ctx, key, tok); err != nil {
		t.Fatal(err)
	}
}

func TestRoundTripTTLAndPrefixes(t *testing.T) {
	rdb, prefix := testClient(t)
	s, _ := newStore(t, rdb, prefix, nil)
	ctx := context.Background()
	if tok, err := s.Load(ctx, key); tok != nil || err != nil {
		t.Fatalf("empty store: %v, %v", tok, err)
	}
	refreshExpiry := time.Now().Add(2 * time.Hour)
	lockSave(t, s, token("rt-1", refreshExpiry))
	got, err := s.Load(ctx, key)
	if err != nil || got == nil || got.RefreshToken.Reveal() != "rt-1" || got.AccessToken.Reveal() != "at-rt-1" {
		t.Fatalf("Load = %v, %v", got, err)
	}
	tokKey := prefix + "tok:{" + key.Name() + "}"
	if ttl := rdb.PTTL(ctx, tokKey).Val(); ttl <= time.Hour || ttl > 2*time.Hour {
		t.Errorf("TTL %v, want the refresh token's 2 h", ttl)
	}
	lockSave(t, s, token("rt-2", time.Time{})) // a refresh token that does not expire
	if ttl := rdb.PTTL(ctx, tokKey).Val(); ttl != -1 {
		t.Errorf("TTL %v, want none", ttl)
	}
	other := key
	other.Scopes = []string{"openid"}
	if tok, _ := s.Load(ctx, other); tok != nil {
		t.Error("an entry for other scopes was used")
	}
	elsewhere, _ := newStore(t, rdb, prefix+"other:", nil)
	if tok, _ := elsewhere.Load(ctx, key); tok != nil {
		t.Error("a store under another prefix sees the entry")
	}
	if err := s.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if tok, _ := s.Load(ctx, key); tok != nil {
		t.Error("the entry survived Delete")
	}
}

// A corrupt value is treated as absent and logged without its contents.
func TestCorruptValue(t *testing.T) {
	rdb, prefix := testClient(t)
	s, logs := newStore(t, rdb, prefix, nil)
	ctx := context.Background()
	rdb.HSet(ctx, prefix+"tok:{"+key.Name()+"}", "gen", "3", "data", `{"version":1,"key":{"issuer":"https://idp.example"},"token":{"access_token":"leaked-`)
	if tok, err := s.Load(ctx, key); tok != nil || err != nil {
		t.Fatalf("Load = %v, %v", tok, err)
	}
	if l := logs.String(); !strings.Contains(l, "entry ignored") || strings.Contains(l, "leaked") {
		t.Errorf("log = %q", l)
	}
}

// The lease: one holder at a time, taken over after release, released only
// by its owner, renewed while held.
func TestLease(t *testing.T) {
	rdb, prefix := testClient(t)
	a, _ := newStore(t, rdb, prefix, func(c *redisstore.Config) { c.LeaseTTL = 300 * time.Millisecond })
	b, _ := newStore(t, rdb, prefix, func(c *redisstore.Config) { c.LeaseTTL = 300 * time.Millisecond })
	ctx := context.Background()
	leaseKey := prefix + "lock:{" + key.Name() + "}"

	unlockA, err := a.Lock(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	// Held past three lease times: renewed (without renewal, B would
	// take it after 300 ms).
	wait, cancel := context.WithTimeout(ctx, time.Second)
	if _, err := b.Lock(wait, key); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a second holder while the first renews: %v", err)
	}
	cancel()
	unlockA()
	unlockB, err := b.Lock(ctx, key)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	// B's lease ends while B is paused (simulated), and a dead process's
	// lease takes its place: B's release must leave it alone.
	rdb.Set(ctx, leaseKey, "a-dead-process", 300*time.Millisecond)
	unlockB()
	if got := rdb.Get(ctx, leaseKey).Val(); got != "a-dead-process" {
		t.Fatalf("release by a non-owner: lease now %q", got)
	}
	// That holder never renews: its lease ends on its own.
	take, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	unlock, err := a.Lock(take, key)
	if err != nil {
		t.Fatalf("taking over a dead holder's lease: %v", err)
	}
	unlock()
}

// Fencing: a process whose lease ended while it was paused cannot save
// over a newer token another process saved meanwhile.
func TestFencing(t *testing.T) {
	rdb, prefix := testClient(t)
	paused, _ := newStore(t, rdb, prefix, nil)
	other, _ := newStore(t, rdb, prefix, nil)
	ctx := context.Background()
	lockSave(t, paused, token("rt-1", time.Time{}))

	unlock, err := paused.Lock(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := paused.Load(ctx, key); err != nil {
		t.Fatal(err)
	}
	// paused stops here; its lease expires and another process takes it.
	rdb.Del(ctx, prefix+"lock:{"+key.Name()+"}")
	unlockOther, err := other.Lock(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Load(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := other.Save(ctx, key, token("rt-2", time.Time{})); err != nil {
		t.Fatal(err)
	}
	unlockOther()

	// paused resumes with the token it fetched from rt-1.
	if err := paused.Save(ctx, key, token("rt-1b", time.Time{})); !errors.Is(err, redisstore.ErrFenced) {
		t.Fatalf("stale save: %v, want ErrFenced", err)
	}
	unlock()
	if tok, _ := other.Load(ctx, key); tok == nil || tok.RefreshToken.Reveal() != "rt-2" {
		t.Errorf("stored %v, want the newer rt-2", tok)
	}
}

// Fencing the spend: a process whose lease lapsed while another process
// took it cannot save, though nothing newer was saved yet (its save could
// record a spend of the token the new holder is about to spend too); with
// the lease free, a process that read the newest entry can.
func TestSaveFencedWhileAnotherHolds(t *testing.T) {
	rdb, prefix := testClient(t)
	short := func(c *redisstore.Config) { c.LeaseTTL = 300 * time.Millisecond }
	a, _ := newStore(t, rdb, prefix, short)
	b, _ := newStore(t, rdb, prefix, short)
	ctx := context.Background()
	lockSave(t, a, token("rt-1", time.Time{}))

	unlockA, err := a.Lock(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	defer unlockA()
	if _, err := a.Load(ctx, key); err != nil {
		t.Fatal(err)
	}
	rdb.Del(ctx, prefix+"lock:{"+key.Name()+"}") // a's lease lapses (a was paused past it)
	unlockB, err := b.Lock(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Load(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := a.Save(ctx, key, token("rt-1-spent-by-a", time.Time{})); !errors.Is(err, redisstore.ErrFenced) {
		t.Errorf("save by a process whose lease lapsed, while another holds it: %v, want ErrFenced", err)
	}
	if err := b.Save(ctx, key, token("rt-2", time.Time{})); err != nil {
		t.Fatalf("the holder's save: %v", err)
	}
	unlockB()
	unlockA()

	if _, err := a.Load(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := a.Save(ctx, key, token("rt-3", time.Time{})); err != nil {
		t.Errorf("save with the lease free, after reading the newest entry: %v", err)
	}
	if tok, _ := b.Load(ctx, key); tok == nil || tok.RefreshToken.Reveal() != "rt-3" {
		t.Errorf("stored %v, want rt-3", tok)
	}
}

func TestConfig(t *testing.T) {
	if _, err := redisstore.New(redisstore.Config{}); !errors.Is(err, auth.ErrInvalidConfig) {
		t.Errorf("no client: %v", err)
	}
	// The go-redis clients New can inspect: refused unless they honour
	// context deadlines (none of these dials anything).
	const nowhere = "127.0.0.1:1"
	for _, tc := range []struct {
		name   string
		client redis.UniversalClient
		fix    string // what the refusal says; "" for a client accepted
	}{
		{"Client", redis.NewClient(&redis.Options{Addr: nowhere}), "ContextTimeoutEnabled: true"},
		{"Client, ContextTimeoutEnabled", redis.NewClient(&redis.Options{Addr: nowhere, ContextTimeoutEnabled: true}), ""},
		{"FailoverClient", redis.NewFailoverClient(&redis.FailoverOptions{MasterName: "m", SentinelAddrs: []string{nowhere}}), "ContextTimeoutEnabled: true"},
		{"FailoverClient, ContextTimeoutEnabled", redis.NewFailoverClient(&redis.FailoverOptions{MasterName: "m", SentinelAddrs: []string{nowhere},
			ContextTimeoutEnabled: true}), ""},
		{"ClusterClient", redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{nowhere}}), "ContextTimeoutEnabled: true"},
		{"ClusterClient, ContextTimeoutEnabled", redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{nowhere}, ContextTimeoutEnabled: true}), ""},
		{"ClusterClient, no socket deadlines", redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{nowhere}, ContextTimeoutEnabled: true,
			ReadTimeout: -2}), "ReadTimeout or WriteTimeout is -2"},
		{"Ring", redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": nowhere}}), "ContextTimeoutEnabled: true"},
		{"Ring, ContextTimeoutEnabled", redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": nowhere}, ContextTimeoutEnabled: true}), ""},
		{"Ring, no socket deadlines", redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": nowhere}, ContextTimeoutEnabled: true,
			WriteTimeout: -2}), "ReadTimeout or WriteTimeout is -2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer tc.client.Close()
			_, err := redisstore.New(redisstore.Config{Client: tc.client})
			switch {
			case tc.fix == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.fix != "" && (!errors.Is(err, auth.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.fix)):
				t.Errorf("New: %v; want a configuration error that says %q", err, tc.fix)
			}
		})
	}
}

// Two processes (two stores, two handlers) share one user's rotating
// refresh token through Redis: however often they refresh, no refresh token
// is spent twice, so the provider's reuse detection never fires.
func TestSharedRotatingRefreshToken(t *testing.T) {
	rdb, prefix := testClient(t)
	p := authtest.NewProvider(authtest.ProviderConfig{Clients: []authtest.Client{{ID: "cli"}}, Users: []authtest.User{{Username: "ada"}}})
	defer p.Close()
	rt := p.IssueRefreshToken("ada", "cli", []string{"openid", "offline_access"})
	var hs []*handlers.RefreshToken
	for range 2 {
		s, _ := newStore(t, rdb, prefix, nil)
		h, err := handlers.NewRefreshToken(handlers.RefreshTokenConfig{
			OAuthConfig:  handlers.OAuthConfig{Endpoints: handlers.Endpoints{Issuer: p.Issuer()}, ClientID: "cli", Store: s},
			RefreshToken: auth.NewSecret(rt),
		})
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		hs = append(hs, h)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for round := range 10 {
		errs := make(chan error, len(hs))
		for _, h := range hs {
			go func() {
				h.Invalidate(auth.ServiceHub, "") // a service refused the token: refresh
				_, err := h.HubRequestHeaders(ctx)
				errs <- err
			}()
		}
		for range hs {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	}
	if n := p.ReusedRefreshTokens(); n != 0 {
		t.Errorf("%d logins revoked for a reused refresh token", n)
	}
}

// auth.EncryptedStore over the Redis store: Redis holds no token in clear,
// the TTL still follows the refresh token, and the lease is Redis'.
func TestEncryptedOverRedis(t *testing.T) {
	rdb, prefix := testClient(t)
	s, _ := newStore(t, rdb, prefix, nil)
	enc, err := auth.NewEncryptedStore(auth.EncryptedStoreConfig{Store: s,
		Keys: []auth.EncryptionKey{{ID: "k1", Key: auth.NewSecret("0123456789abcdef0123456789abcdef")}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	unlock, err := enc.(auth.Locker).Lock(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := enc.Save(ctx, key, token("rt-clear", time.Now().Add(2*time.Hour))); err != nil {
		t.Fatal(err)
	}
	unlock()
	tokKey := prefix + "tok:{" + key.Name() + "}"
	if v := rdb.HGet(ctx, tokKey, "data").Val(); v == "" || strings.Contains(v, "rt-clear") {
		t.Errorf("Redis holds %q", v)
	}
	if ttl := rdb.PTTL(ctx, tokKey).Val(); ttl <= time.Hour {
		t.Errorf("TTL %v, want the refresh token's 2 h", ttl)
	}
	if got, _ := enc.Load(ctx, key); got == nil || got.RefreshToken.Reveal() != "rt-clear" {
		t.Errorf("Load = %v", got)
	}
}

// BenchmarkRefreshPath is the store's cost on the refresh path, as the
// engine pays it once per refresh: Lock, Load, Save, release (5 Redis
// round trips: SET NX, HMGET, the save script, the release script, and
// none for renewal at this speed). The hot path does not touch the store.
func BenchmarkRefreshPath(b *testing.B) {
	rdb, prefix := benchClient(b)
	s, err := redisstore.New(redisstore.Config{Client: rdb, Prefix: prefix})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	tok := token("rt", time.Now().Add(time.Hour))
	b.ReportAllocs()
	for b.Loop() {
		unlock, err := s.Lock(ctx, key)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Load(ctx, key); err != nil {
			b.Fatal(err)
		}
		if err := s.Save(ctx, key, tok); err != nil {
			b.Fatal(err)
		}
		unlock()
	}
}

// benchClient is testClient for benchmarks.
func benchClient(b *testing.B) (redis.UniversalClient, string) {
	addr := os.Getenv(envRedis)
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		b.Skipf("no Redis at %s: %v", addr, err)
	}
	prefix := "authkit-bench:"
	b.Cleanup(func() {
		keys, _ := rdb.Keys(context.Background(), prefix+"*").Result()
		if len(keys) > 0 {
			rdb.Del(context.Background(), keys...)
		}
		rdb.Close()
	})
	return rdb, prefix
}

// TestSaveWithoutLoad: a Store that never read a key may create it when
// nothing is stored and nobody holds the lease; when something is stored,
// the save is fenced with an error that says to load first (it used to be
// fenced either way, saying another process saved a newer token when none
// existed).
func TestSaveWithoutLoad(t *testing.T) {
	rdb, prefix := testClient(t)
	ctx := context.Background()
	first, _ := newStore(t, rdb, prefix, nil)
	if err := first.Save(ctx, key, token("rt-1", time.Time{})); err != nil {
		t.Fatalf("save of a key nothing stores, never loaded: %v", err)
	}
	second, _ := newStore(t, rdb, prefix, nil)
	err := second.Save(ctx, key, token("rt-x", time.Time{}))
	if !errors.Is(err, redisstore.ErrFenced) || !strings.Contains(err.Error(), "Load") {
		t.Fatalf("save over a stored entry never loaded: %v, want ErrFenced saying to load first", err)
	}
	if tok, _ := second.Load(ctx, key); tok == nil || tok.RefreshToken.Reveal() != "rt-1" {
		t.Errorf("stored %v, want rt-1 kept", tok)
	}
	if err := second.Save(ctx, key, token("rt-2", time.Time{})); err != nil {
		t.Errorf("save after a Load of the newest entry: %v", err)
	}
}

// TestStaleReaderFencedAcrossLogins: a process that read the entry long
// ago must not overwrite a newer login that began after a logout or after
// the entry's time to live ran out. Generations counted again from 0 for
// the new login, so the old reader's generation matched it (ABA) and its
// save — of a token from the old, revoked login — replaced the new one.
func TestStaleReaderFencedAcrossLogins(t *testing.T) {
	for _, end := range []string{"logout", "expiry"} {
		t.Run(end, func(t *testing.T) {
			rdb, prefix := testClient(t)
			stale, _ := newStore(t, rdb, prefix, nil)
			other, _ := newStore(t, rdb, prefix, nil)
			ctx := context.Background()
			lockSave(t, stale, token("rt-old", time.Time{}))
			if _, err := stale.Load(ctx, key); err != nil {
				t.Fatal(err)
			}
			// stale pauses. The login ends, and a new one begins.
			if end == "logout" {
				if err := other.Delete(ctx, key); err != nil {
					t.Fatal(err)
				}
			} else {
				rdb.Del(ctx, prefix+"tok:{"+key.Name()+"}")
			}
			if tok, err := other.Load(ctx, key); tok != nil || err != nil {
				t.Fatalf("after the %s: %v, %v", end, tok, err)
			}
			lockSave(t, other, token("rt-new", time.Time{}))

			// stale resumes, without the lease, with what it derived from rt-old.
			if err := stale.Save(ctx, key, token("rt-from-old", time.Time{})); !errors.Is(err, redisstore.ErrFenced) {
				t.Fatalf("a stale reader's save over the new login: %v, want ErrFenced", err)
			}
			if tok, _ := other.Load(ctx, key); tok == nil || tok.RefreshToken.Reveal() != "rt-new" {
				t.Errorf("stored %v, want the new login's rt-new", tok)
			}
		})
	}
}

// TestGenerationsAboveTheHighWater: a new login's first generation is
// above every generation the key had, even one ahead of Redis's clock (a
// clock that stepped back since), so an old reader still cannot match.
func TestGenerationsAboveTheHighWater(t *testing.T) {
	rdb, prefix := testClient(t)
	s, _ := newStore(t, rdb, prefix, nil)
	ctx := context.Background()
	lockSave(t, s, token("rt-old", time.Time{}))
	future := time.Now().Add(24 * time.Hour).UnixMicro() // the old login's clock was a day ahead
	rdb.Set(ctx, prefix+"gen:{"+key.Name()+"}", future, 0)
	if err := s.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	lockSave(t, s, token("rt-new", time.Time{}))
	gen, err := rdb.HGet(ctx, prefix+"tok:{"+key.Name()+"}", "gen").Int64()
	if err != nil || gen <= future {
		t.Errorf("the new login's generation %d, %v; want above the high-water %d", gen, err, future)
	}
	if ttl := rdb.PTTL(ctx, prefix+"gen:{"+key.Name()+"}").Val(); ttl <= 0 || ttl > 30*24*time.Hour {
		t.Errorf("high-water mark's time to live %s, want at most 30 days", ttl)
	}
}
