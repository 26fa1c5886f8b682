package redisstore_test

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/auth/redisstore"
)

// The store against a Redis that fails, through a faultProxy.

// redisAddr is the tests' Redis, for clients of their own (testClient
// skips or fails the test when it does not answer).
func redisAddr(t *testing.T) string {
	rdb, _ := testClient(t)
	return rdb.(*redis.Client).Options().Addr
}

// Every operation is bounded by Config.Timeout, also against a Redis that
// accepts connections and never answers: a store on a client that would
// wait past it (go-redis ignores ctx deadlines unless
// ContextTimeoutEnabled) is refused by New. The bound allows 3 times the
// Timeout: it is a bound, not a speed claim.
func TestOperationsBoundedWhenRedisNeverAnswers(t *testing.T) {
	const timeout = 300 * time.Millisecond
	const bound = 3 * timeout
	for _, tc := range []struct {
		name string
		opt  redis.Options
		cold bool   // no connection made before the fault: a TLS client cannot talk to the plain Redis of the tests
		fix  string // what a refusal must say to set; "" when New must accept the client
	}{
		{name: "go-redis defaults", fix: "ContextTimeoutEnabled: true"},
		{name: "ContextTimeoutEnabled", opt: redis.Options{ContextTimeoutEnabled: true}},
		{name: "ContextTimeoutEnabled, retries and long timeouts", opt: redis.Options{ContextTimeoutEnabled: true, MaxRetries: 5,
			DialTimeout: 10 * time.Second, ReadTimeout: 10 * time.Second, PoolTimeout: 10 * time.Second}},
		{name: "ContextTimeoutEnabled, socket deadlines disabled", fix: "ReadTimeout or WriteTimeout is -2",
			opt: redis.Options{ContextTimeoutEnabled: true, ReadTimeout: -2, WriteTimeout: -2}},
		{name: "TLS handshake, ContextTimeoutEnabled", cold: true,
			opt: redis.Options{ContextTimeoutEnabled: true, TLSConfig: &tls.Config{ServerName: "redis.example"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proxy := newFaultProxy(t, redisAddr(t))
			opt := tc.opt
			opt.Addr = proxy.Addr()
			rdb := redis.NewClient(&opt)
			defer rdb.Close()
			_, prefix := testClient(t)
			s, err := redisstore.New(redisstore.Config{Client: rdb, Prefix: prefix, Timeout: timeout, LeaseTTL: time.Second})
			if err != nil {
				if tc.fix == "" || !errors.Is(err, auth.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.fix) {
					t.Fatalf("New: %v; want a store, or a configuration error that says %q", err, tc.fix)
				}
				t.Logf("refused: %v", err)
				return
			}
			ctx := context.Background()
			if !tc.cold {
				lockSave(t, s, token("rt-1", time.Time{})) // a pooled connection, as in a running process
			}
			proxy.SetMode(faultBlackHole)
			for _, op := range []struct {
				name string
				run  func() error
			}{
				{"Load", func() error { _, err := s.Load(ctx, key); return err }},
				{"Lock", func() error {
					unlock, err := s.Lock(ctx, key)
					if err == nil {
						unlock()
					}
					return err
				}},
				{"Save", func() error { return s.Save(ctx, key, token("rt-2", time.Time{})) }},
				{"Delete", func() error { return s.Delete(ctx, key) }},
			} {
				began := time.Now()
				errc := make(chan error, 1)
				go func() { errc <- op.run() }()
				var err error
				select {
				case err = <-errc:
				case <-time.After(20 * time.Second):
					t.Errorf("%s still waits after 20 s with Redis black-holed (Timeout %v); closing the client", op.name, timeout)
					rdb.Close()
					<-errc
					return
				}
				took := time.Since(began)
				if took > bound {
					t.Errorf("%s took %v with Redis black-holed, want at most %v (Timeout %v)", op.name, took.Round(time.Millisecond), bound, timeout)
				}
				if err == nil {
					t.Errorf("%s succeeded with Redis black-holed", op.name)
				}
			}
		})
	}
}

// Redis away (refusing connections, or accepting them and never
// answering): Load and Lock fail with a transient ErrUnavailable, never
// "nothing stored" or a lock without a lease; Save and Delete fail too.
// One warning for the whole outage, one record when Redis is back.
func TestRedisUnavailable(t *testing.T) {
	for _, mode := range []faultMode{faultDrop, faultBlackHole} {
		t.Run(mode.String(), func(t *testing.T) {
			proxy := newFaultProxy(t, redisAddr(t))
			rdb := redis.NewClient(&redis.Options{Addr: proxy.Addr(), ContextTimeoutEnabled: true, MaxRetries: -1})
			defer rdb.Close()
			_, prefix := testClient(t)
			s, logs := newStore(t, rdb, prefix, func(c *redisstore.Config) { c.Timeout = 200 * time.Millisecond })
			ctx := context.Background()
			lockSave(t, s, token("rt-1", time.Time{}))
			proxy.SetMode(mode)
			unavailable := func(what string, err error) {
				t.Helper()
				if !errors.Is(err, redisstore.ErrUnavailable) || !auth.IsTransient(err) {
					t.Fatalf("%s: %v; want a transient ErrUnavailable", what, err)
				}
			}
			for range 3 {
				tok, err := s.Load(ctx, key)
				if tok != nil {
					t.Fatalf("Load = %v without Redis", tok)
				}
				unavailable("Load", err)
				unlock, err := s.Lock(ctx, key)
				if err == nil {
					unlock()
					t.Fatal("Lock returned a lock without Redis")
				}
				unavailable("Lock", err)
				unavailable("Save", s.Save(ctx, key, token("rt-2", time.Time{})))
				unavailable("Delete", s.Delete(ctx, key))
			}
			proxy.SetMode(faultPass)
			// go-redis refuses to dial for a while after failed dials.
			if !eventually(func() bool { _, err := s.Load(ctx, key); return err == nil }) {
				t.Fatal("Load still fails 5 s after Redis is back")
			}
			if n := strings.Count(logs.String(), "Redis is unreachable"); n != 1 {
				t.Errorf("%d warnings for one outage:\n%s", n, logs)
			}
			if n := strings.Count(logs.String(), "Redis answers again"); n != 1 {
				t.Errorf("%d records of Redis' return:\n%s", n, logs)
			}
		})
	}
}

// A caller whose own ctx ends gets its ctx's error, not ErrUnavailable,
// and Redis is not reported away.
func TestCallerDeadlineIsNotAnOutage(t *testing.T) {
	proxy := newFaultProxy(t, redisAddr(t))
	rdb := redis.NewClient(&redis.Options{Addr: proxy.Addr(), ContextTimeoutEnabled: true})
	defer rdb.Close()
	_, prefix := testClient(t)
	s, logs := newStore(t, rdb, prefix, nil)
	lockSave(t, s, token("rt-1", time.Time{}))
	proxy.SetMode(faultBlackHole)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.Load(ctx, key); !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, redisstore.ErrUnavailable) {
		t.Errorf("Load past the caller's deadline: %v", err)
	}
	if strings.Contains(logs.String(), "unreachable") {
		t.Errorf("the caller's deadline was logged as an outage:\n%s", logs)
	}
}

// A holder that loses its lease knows it: when renewal finds the lease
// taken, or cannot reach Redis until the lease may have expired, it logs
// once and its saves are no longer the holder's, even if its old lease
// value comes back (as after a failover to a replica that still has it).
func TestLostLease(t *testing.T) {
	for _, how := range []string{"taken", "unreachable"} {
		t.Run(how, func(t *testing.T) {
			rdb, prefix := testClient(t)
			proxy := newFaultProxy(t, redisAddr(t))
			viaProxy := redis.NewClient(&redis.Options{Addr: proxy.Addr(), ContextTimeoutEnabled: true, MaxRetries: -1})
			defer viaProxy.Close()
			const lease = 300 * time.Millisecond
			a, logs := newStore(t, viaProxy, prefix, func(c *redisstore.Config) { c.LeaseTTL, c.Timeout = lease, 100*time.Millisecond })
			b, _ := newStore(t, rdb, prefix, func(c *redisstore.Config) { c.LeaseTTL = lease })
			ctx := context.Background()
			leaseKey := prefix + "lock:{" + key.Name() + "}"
			lockSave(t, a, token("rt-1", time.Time{}))

			unlockA, err := a.Lock(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			defer unlockA()
			if _, err := a.Load(ctx, key); err != nil {
				t.Fatal(err)
			}
			owner := rdb.Get(ctx, leaseKey).Val()
			if how == "taken" {
				rdb.Del(ctx, leaseKey)
			} else {
				proxy.SetMode(faultDrop) // b takes the lease once a's expires
			}
			wait, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			unlockB, err := b.Lock(wait, key)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.Load(ctx, key); err != nil {
				t.Fatal(err)
			}
			if err := b.Save(ctx, key, token("rt-2", time.Time{})); err != nil {
				t.Fatal(err)
			}
			unlockB()

			if !eventually(func() bool { return strings.Contains(logs.String(), "lease was lost") }) {
				t.Errorf("no record of the lost lease within 5 s:\n%s", logs)
			}
			proxy.SetMode(faultPass)
			// go-redis refuses to dial for a while after failed dials.
			if !eventually(func() bool { return viaProxy.Ping(ctx).Err() == nil }) {
				t.Fatal("no connection through the proxy after it passes again")
			}
			rdb.Set(ctx, leaseKey, owner, 10*time.Second) // a's old lease comes back
			if err := a.Save(ctx, key, token("rt-1b", time.Time{})); !errors.Is(err, redisstore.ErrFenced) {
				t.Errorf("save by a holder whose lease was lost: %v, want ErrFenced", err)
			}
			if tok, _ := b.Load(ctx, key); tok == nil || tok.RefreshToken.Reveal() != "rt-2" {
				t.Errorf("stored %v, want the newer rt-2", tok)
			}
			if n := strings.Count(logs.String(), "lease was lost"); n > 1 {
				t.Errorf("%d records of one lost lease:\n%s", n, logs)
			}
		})
	}
}

// eventually polls cond for up to 5 s.
func eventually(cond func() bool) bool {
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}
