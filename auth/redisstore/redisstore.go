// Package redisstore is an [auth.Store] and [auth.Locker] on Redis, for a
// fleet of processes that share one identity: the process that holds a
// login's lease reloads, fetches and saves; the others wait for the lease
// and read what it saved. With Redis answering, a fleet of 16 processes
// makes about as many token requests as one (TestFleetClientCredentials),
// and a rotating refresh token shared by the fleet is spent once per
// rotation, with no reuse detected by the provider
// (TestSharedRotatingRefreshToken, TestFleetRotatingRefreshToken).
//
// # Keys
//
// An entry is the token stores' versioned encoding ([auth.EncodeStoreEntry])
// and a generation, in a hash under Prefix + "tok:{" + key.Name() + "}",
// with a time to live that ends with the refresh token (or, without one,
// with the access token). The lease is Prefix + "lock:{" + key.Name() + "}";
// the generations' high-water mark Prefix + "gen:{" + key.Name() + "}"
// (30 days after the last save); the hash tag keeps them in one Cluster
// slot, as the scripts need.
//
// # The lease
//
// [Store.Lock] takes the lease with SET NX PX and a random owner value,
// renews it every third of Config.LeaseTTL while it is held, and on
// release deletes it only if it still holds the owner's value (TestLease).
// The lease of a holder that dies ends within LeaseTTL
// (TestFleetKillTheLockHolder). A holder whose renewal finds another value
// (or none), or that has no renewal confirmed by Redis for LeaseTTL since
// the last one was sent (so the lease may have expired), counts from then
// on as not holding it: it stops renewing and logs one warning
// (TestLostLease).
//
// # Fencing
//
// [Store.Save] is accepted from the holder of the lease, or, when nobody
// holds it, from a process whose last Load or Save is still the newest
// generation (a Store that never read the key: when nothing is stored);
// otherwise it fails with [ErrFenced] (TestFencing,
// TestSaveFencedWhileAnotherHolds, TestLostLease, TestSaveWithoutLoad).
// Generations never repeat, not even across a logout or an expiry, so an
// old reader never passes for a new one (TestStaleReaderFencedAcrossLogins).
// The engine records that
// it is about to spend a refresh token with a Save before it presents it,
// so the fence is on the spend as well as on the saving of what the spend
// returned: a process whose lease lapsed can record neither while another
// process holds the lease, nor after another process saved. The record of leases and generations is kept per Store value:
// engines in one process that share a Store and a login are one process
// to the fence.
//
// # Bounded operations
//
// Each Redis operation (a Load, each attempt of a Lock, a Save, a Delete, a
// renewal, a release) gets Config.Timeout, and the client gives up at that
// deadline, also against a Redis that accepts connections and never
// answers: TestOperationsBoundedWhenRedisNeverAnswers checks that Load,
// Lock, Save and Delete return within three times Timeout there, with a
// standalone client (a bound, not a speed).
// go-redis applies a context's deadline only with ContextTimeoutEnabled,
// and applies no deadline at all with a ReadTimeout or WriteTimeout of -2,
// so [New] refuses a *redis.Client, *redis.ClusterClient or *redis.Ring
// (the Sentinel clients are of these types) set up otherwise. Any other
// [redis.UniversalClient] is taken as it is, and its bound is its own. A
// cluster client also makes lookups of its own (slots, command
// information) under timeouts of its own.
//
// # Redis away
//
// When Redis refuses, does not answer within the timeout, or answers an
// operation with an error, the operation fails with an error that wraps
// [ErrUnavailable] and for which [auth.IsTransient] holds: Lock never
// returns without a lease, and Load never reports "nothing stored" for
// an entry it could not read (TestRedisUnavailable). One warning is logged
// when Redis goes away and one record when it answers again. A caller
// whose own ctx ends gets that ctx's error instead
// (TestCallerDeadlineIsNotAnOutage). Serving a still valid token meanwhile
// and retrying are the engine's work.
//
// # What the store needs from Redis
//
// The store trusts Redis to keep what it acknowledged and to expire a lease
// no sooner than asked; it does not detect a Redis that lost data. An
// entry that is gone reads as nothing stored, and restoring the login is
// the engine's work (re-seeding).
//   - Eviction: with maxmemory-policy noeviction nothing is evicted; a
//     full Redis fails writes, which the store reports as ErrUnavailable.
//     A volatile-* policy evicts only keys with a time to live, which every
//     lease and most entries have: it is safe only while Redis stays under
//     maxmemory. An allkeys-* policy can evict any of them.
//   - Persistence: without it (the default of these machines' Redis), a
//     restart loses every entry and lease. AOF with appendfsync always
//     keeps what was acknowledged; everysec can lose the last second.
//   - Failover (Sentinel, Cluster): replication is asynchronous and the
//     store does not use WAIT, so a promoted replica can lack the last
//     saves and leases, and another process can then take a lease that a
//     holder still uses. A promoted replica that brings back a lease a
//     holder already counts as lost does not make it a holder again
//     (TestLostLease).
package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/authkit-go/authkit/auth"
)

// Defaults of [Config].
const (
	DefaultPrefix   = "authkit:"
	DefaultLeaseTTL = 15 * time.Second
	DefaultTimeout  = time.Second
	DefaultLockPoll = 50 * time.Millisecond
)

// ErrFenced means a save was refused: the caller does not hold the lease,
// and either another process holds it or another process saved a newer
// token since the caller last read it. What is stored stays.
var ErrFenced = errors.New("redisstore: not saved: another process holds the lease or saved a newer token")

// errNotRead is ErrFenced for a Store that never read the entry it would
// replace.
var errNotRead = fmt.Errorf("%w (this Store never read the stored entry: Load it first, or hold the lease)", ErrFenced)

// ErrUnavailable means Redis did not serve an operation within
// Config.Timeout: unreachable, not answering, or answering with an error.
// The errors that wrap it are marked with [auth.Transient]: retry later.
var ErrUnavailable = errors.New("redisstore: Redis is unavailable")

// Config configures a [Store]. Only Client is required.
type Config struct {
	// Client is a standalone, Sentinel, Cluster or Ring client. Required.
	// It must honour context deadlines: go-redis clients need
	// ContextTimeoutEnabled: true in their options, and a ReadTimeout and
	// WriteTimeout other than -2 ([New] checks).
	Client redis.UniversalClient
	// Prefix starts every key; empty means DefaultPrefix. Stores with
	// different prefixes never see each other's entries.
	Prefix string
	// LeaseTTL is the lock's lease; the holder renews it every third of
	// it while it holds the lock, so a process that dies releases it
	// within LeaseTTL. Zero means DefaultLeaseTTL.
	LeaseTTL time.Duration
	// Timeout bounds each Redis operation; past it the operation fails
	// with ErrUnavailable. Zero means DefaultTimeout.
	Timeout time.Duration
	// LockPoll is the wait between attempts to take a held lock; zero
	// means DefaultLockPoll.
	LockPoll time.Duration
	// Clock is the clock of the entries' saved_at and time to live; nil
	// means auth.SystemClock(). The lease is timed with the monotonic
	// clock.
	Clock auth.Clock
	// Logger receives the changes of Redis' state, lost leases and the
	// entries ignored, never a token; nil means silent.
	Logger *slog.Logger
}

// Store is an auth.Store and auth.Locker on Redis. It is safe for
// concurrent use, by any number of engines and processes.
type Store struct {
	rdb      redis.UniversalClient
	prefix   string
	lease    time.Duration
	timeout  time.Duration
	poll     time.Duration
	clock    auth.Clock
	log      *slog.Logger
	degraded atomic.Bool

	mu     sync.Mutex        // guards leases and gen
	leases map[string]*lease // key name -> the lease this process holds
	gen    map[string]int64  // key name -> the generation this process last read or wrote
}

// lease is this process's hold on one login's lease.
type lease struct {
	owner string    // the lease key's value
	until time.Time // the latest the lease can last in Redis: when the last confirmed SET or renewal was sent, plus LeaseTTL
	lost  bool      // no longer counted as held
}

var (
	_ auth.Store  = (*Store)(nil)
	_ auth.Locker = (*Store)(nil)
)

// New returns a store on cfg.Client. It performs no I/O. It refuses a
// go-redis client that would let an operation outlast Config.Timeout.
func New(cfg Config) (*Store, error) {
	if cfg.Client == nil {
		return nil, auth.ConfigError("redisstore: Config.Client is required")
	}
	if cfg.LeaseTTL < 0 || cfg.Timeout < 0 || cfg.LockPoll < 0 {
		return nil, auth.ConfigError("redisstore: durations must not be negative")
	}
	if err := checkDeadlines(cfg.Client); err != nil {
		return nil, err
	}
	s := &Store{rdb: cfg.Client, prefix: cfg.Prefix, lease: cfg.LeaseTTL, timeout: cfg.Timeout, poll: cfg.LockPoll,
		clock: cfg.Clock, log: cfg.Logger, leases: map[string]*lease{}, gen: map[string]int64{}}
	if s.prefix == "" {
		s.prefix = DefaultPrefix
	}
	if s.lease == 0 {
		s.lease = DefaultLeaseTTL
	}
	if s.lease < 3*time.Millisecond {
		return nil, auth.ConfigError("redisstore: LeaseTTL %v is too short to renew", s.lease)
	}
	if s.timeout == 0 {
		s.timeout = DefaultTimeout
	}
	if s.poll == 0 {
		s.poll = DefaultLockPoll
	}
	if s.clock == nil {
		s.clock = auth.SystemClock()
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// checkDeadlines refuses the go-redis clients whose operations would not
// end at their context's deadline: without ContextTimeoutEnabled they use
// their own ReadTimeout and WriteTimeout instead (5 s by default, plus
// retries), and with -2 they set no socket deadline at all. Other clients
// cannot be inspected.
func checkDeadlines(c redis.UniversalClient) error {
	var ctxDeadlines, noDeadlines bool
	switch c := c.(type) {
	case *redis.Client: // also the Sentinel failover client
		o := c.Options() // initialised: -2 is now -1
		ctxDeadlines, noDeadlines = o.ContextTimeoutEnabled, o.ReadTimeout < 0 || o.WriteTimeout < 0
	case *redis.ClusterClient:
		o := c.Options()
		ctxDeadlines, noDeadlines = o.ContextTimeoutEnabled, o.ReadTimeout == -2 || o.WriteTimeout == -2
	case *redis.Ring:
		o := c.Options()
		ctxDeadlines, noDeadlines = o.ContextTimeoutEnabled, o.ReadTimeout == -2 || o.WriteTimeout == -2
	default:
		return nil
	}
	if !ctxDeadlines {
		return auth.ConfigError("redisstore: the Redis client ignores context deadlines, so Config.Timeout could not bound its operations: set ContextTimeoutEnabled: true in its options")
	}
	if noDeadlines {
		return auth.ConfigError("redisstore: the Redis client's ReadTimeout or WriteTimeout is -2, which disables socket deadlines, context deadlines included: use -1 (none of its own) or a duration")
	}
	return nil
}

// The keys of one login: the hash tag keeps both in one Cluster slot, as
// the scripts need.
func (s *Store) tokKey(name string) string   { return s.prefix + "tok:{" + name + "}" }
func (s *Store) leaseKey(name string) string { return s.prefix + "lock:{" + name + "}" }

// hwKey holds the high-water mark of the generations of name's entries.
func (s *Store) hwKey(name string) string { return s.prefix + "gen:{" + name + "}" }

// op bounds one Redis operation.
func (s *Store) op(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// fail returns the error of a failed operation: the caller's when its ctx
// ended, else ErrUnavailable, transient, after recording that Redis is
// away.
func (s *Store) fail(ctx context.Context, what string, err error) error {
	if cerr := callerDone(ctx); cerr != nil {
		return fmt.Errorf("redisstore: %s: %w", what, cerr)
	}
	s.away(what, err)
	return auth.Transient(fmt.Errorf("%w: %s: %w", ErrUnavailable, what, err))
}

// callerDone returns ctx's error, also when its deadline has passed a
// moment before ctx records it (a socket deadline taken from ctx fires at
// the same instant).
func callerDone(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}

// away records that Redis failed an operation: one warning per outage.
func (s *Store) away(what string, err error) {
	if !s.degraded.Swap(true) {
		s.log.Warn("redisstore: Redis is unreachable; the shared token cannot be read, locked or refreshed until it answers (a valid token is still served)",
			"operation", what, "error", err)
	}
}

// back records that Redis answered.
func (s *Store) back() {
	if s.degraded.Swap(false) {
		s.log.Info("redisstore: Redis answers again; the shared cache is back")
	}
}

// Load returns the token saved for key, or (nil, nil) when none is stored
// or what is stored is not usable. When Redis cannot be read it returns an
// error wrapping ErrUnavailable, never (nil, nil).
func (s *Store) Load(ctx context.Context, key auth.StoreKey) (*auth.Token, error) {
	name := key.Name()
	octx, cancel := s.op(ctx)
	defer cancel()
	vals, err := s.rdb.HMGet(octx, s.tokKey(name), "gen", "data").Result()
	if err != nil {
		return nil, s.fail(ctx, "load", err)
	}
	s.back()
	gen, _ := vals[0].(string)
	data, _ := vals[1].(string)
	var g int64
	if gen != "" {
		if _, err := fmt.Sscan(gen, &g); err != nil {
			g = -1
		}
	}
	s.mu.Lock()
	s.gen[name] = g
	s.mu.Unlock()
	if data == "" {
		return nil, nil
	}
	tok, err := auth.DecodeStoreEntry([]byte(data), key)
	if err != nil {
		level := slog.LevelWarn
		if errors.Is(err, auth.ErrOtherConfiguration) {
			level = slog.LevelDebug
		}
		s.log.Log(ctx, level, "redisstore: entry ignored; the next login replaces it", "key", s.tokKey(name), "reason", err.Error())
		return nil, nil
	}
	return tok, nil
}

// saveScript writes an entry if the caller holds the lease, or if nobody
// holds it and the caller read the newest generation: KEYS tok, lease;
// ARGV owner ("" for none), the generation read (0 for none: nothing
// stored), the entry,
// the expiry in Unix ms (0 for none). It returns the new generation, or -1
// when fenced.
//
// The first entry of a login (nothing stored: after a logout, an expiry or
// ever) does not start again at 1: it takes the larger of the server's
// clock in microseconds and one more than the key's high-water mark
// (KEYS[3], kept 30 days after each save and not removed by Delete), and
// every later one counts up from there. So generations never repeat across
// logins — not even when Redis was emptied, or its clock stepped back — and
// a process that read an entry of an earlier login never matches a later
// one (TestStaleReaderFencedAcrossLogins, TestGenerationsAboveTheHighWater).
var saveScript = redis.NewScript(`
if redis.replicate_commands then redis.replicate_commands() end
local stored = redis.call('HGET', KEYS[1], 'gen')
local gen = tonumber(stored or '0')
local holder = redis.call('GET', KEYS[2])
local held = ARGV[1] ~= '' and holder == ARGV[1]
local free = holder == false and tonumber(ARGV[2]) == gen
if not (held or free) then
  return -1
end
local next = gen + 1
if stored == false then
  local t = redis.call('TIME')
  next = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local hw = tonumber(redis.call('GET', KEYS[3]) or '0')
  if hw >= next then
    next = hw + 1
  end
end
redis.call('HSET', KEYS[1], 'gen', next, 'data', ARGV[3])
if tonumber(ARGV[4]) > 0 then
  redis.call('PEXPIREAT', KEYS[1], ARGV[4])
else
  redis.call('PERSIST', KEYS[1])
end
redis.call('SET', KEYS[3], next, 'PX', 2592000000)
return next
`)

// Save writes tok for key, fenced (see ErrFenced), with a time to live
// that ends when the token can no longer be used.
func (s *Store) Save(ctx context.Context, key auth.StoreKey, tok *auth.Token) error {
	entry, err := auth.EncodeStoreEntry(key, tok, s.clock.Now())
	if err != nil {
		return err
	}
	name := key.Name()
	owner := s.heldOwner(name)
	s.mu.Lock()
	read, ok := s.gen[name] // never read: expect nothing stored (generation 0)
	s.mu.Unlock()
	var expireAt int64
	if t := until(tok); !t.IsZero() {
		expireAt = t.UnixMilli()
	}
	octx, cancel := s.op(ctx)
	defer cancel()
	gen, err := saveScript.Run(octx, s.rdb, []string{s.tokKey(name), s.leaseKey(name), s.hwKey(name)}, owner, read, entry, expireAt).Int64()
	if err != nil {
		return s.fail(ctx, "save", err)
	}
	s.back()
	if gen < 0 {
		if !ok {
			return errNotRead
		}
		return ErrFenced
	}
	s.mu.Lock()
	s.gen[name] = gen
	s.mu.Unlock()
	return nil
}

// heldOwner returns the owner value of the lease this process holds on
// name, or "" when it holds none or counts it as lost. A lease whose
// renewal is overdue is lost here and now.
func (s *Store) heldOwner(name string) string {
	s.mu.Lock()
	l := s.leases[name]
	s.mu.Unlock()
	if l == nil || s.lapsed(name, l) {
		return ""
	}
	return l.owner
}

// lapsed reports whether l no longer counts as held, recording it as lost
// when its renewal is overdue.
func (s *Store) lapsed(name string, l *lease) bool {
	s.mu.Lock()
	lost, overdue := l.lost, !time.Now().Before(l.until)
	s.mu.Unlock()
	if !lost && overdue {
		s.lose(name, l, "not renewed within the lease")
	}
	return lost || overdue
}

// lose records that l is no longer held; the first time, it logs why.
func (s *Store) lose(name string, l *lease, why string) {
	s.mu.Lock()
	first := !l.lost
	l.lost = true
	s.mu.Unlock()
	if first {
		s.log.Warn("redisstore: the lease was lost while held; this holder's saves are no longer accepted as the holder's",
			"key", s.leaseKey(name), "reason", why)
	}
}

// until is when tok stops being useful: the refresh token's expiry (zero,
// never, for a refresh token without one), else the access token's.
func until(tok *auth.Token) time.Time {
	if !tok.RefreshToken.IsZero() {
		if tok.RefreshExpiry.IsZero() {
			return time.Time{}
		}
		return later(tok.RefreshExpiry, tok.Expiry)
	}
	return tok.Expiry
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Delete removes key's entry: the logout.
func (s *Store) Delete(ctx context.Context, key auth.StoreKey) error {
	name := key.Name()
	octx, cancel := s.op(ctx)
	defer cancel()
	if err := s.rdb.Del(octx, s.tokKey(name)).Err(); err != nil {
		return s.fail(ctx, "delete", err)
	}
	s.back()
	s.mu.Lock()
	delete(s.gen, name)
	s.mu.Unlock()
	return nil
}

// Owner-only scripts: KEYS lease; ARGV owner (, lease ms).
var (
	renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`)
	releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)
)

// Lock takes the lease of key's login, waiting as long as ctx allows, and
// renews it until the returned function releases it. When Redis cannot be
// reached it returns an error wrapping ErrUnavailable (transient), never a
// release without a lease.
func (s *Store) Lock(ctx context.Context, key auth.StoreKey) (func(), error) {
	name := key.Name()
	lk := s.leaseKey(name)
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails
	l := &lease{owner: hex.EncodeToString(b)}
	for {
		sent := time.Now()
		octx, cancel := s.op(ctx)
		ok, err := s.rdb.SetNX(octx, lk, l.owner, s.lease).Result()
		cancel()
		if err != nil {
			return nil, s.fail(ctx, "lock", err)
		}
		s.back()
		if ok {
			l.until = sent.Add(s.lease)
			break
		}
		t := time.NewTimer(s.poll)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("redisstore: waiting for the lock held by another process: %w", ctx.Err())
		}
	}
	s.mu.Lock()
	s.leases[name] = l
	s.mu.Unlock()

	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		s.renew(name, l, stop)
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(stop)
			<-done
			s.mu.Lock()
			if s.leases[name] == l {
				delete(s.leases, name)
			}
			s.mu.Unlock()
			octx, cancel := s.op(context.Background())
			defer cancel()
			if err := releaseScript.Run(octx, s.rdb, []string{lk}, l.owner).Err(); err != nil {
				s.away("unlock", err) // the lease ends on its own
			}
		})
	}, nil
}

// renew renews l every third of the lease until stop is closed or l is
// lost: Redis says it is not ours, or no renewal was confirmed before it
// may have expired.
func (s *Store) renew(name string, l *lease, stop <-chan struct{}) {
	tick := time.NewTicker(s.lease / 3)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-stop:
			return
		}
		sent := time.Now()
		octx, cancel := s.op(context.Background())
		n, err := renewScript.Run(octx, s.rdb, []string{s.leaseKey(name)}, l.owner, s.lease.Milliseconds()).Int64()
		cancel()
		switch {
		case err != nil:
			s.away("renew", err)
			if s.lapsed(name, l) {
				return
			}
		case n == 0:
			s.back()
			s.lose(name, l, "another process holds it, or it expired")
			return
		default:
			s.back()
			s.mu.Lock()
			lost := l.lost
			if !lost {
				l.until = sent.Add(s.lease)
			}
			s.mu.Unlock()
			if lost { // counted as lost already: extending it would only keep others waiting
				return
			}
		}
	}
}
