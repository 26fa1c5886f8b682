// Package redisstore is an [auth.Store] and [auth.Locker] on Redis, for a
// fleet of processes that share one identity: one of them fetches a token
// while the others wait for it and read it, so the provider sees one
// request per token lifetime for the whole fleet, and a rotating refresh
// token is never spent twice.
//
// Values are the token stores' versioned entries ([auth.EncodeStoreEntry]),
// under Prefix + "tok:{" + key.Name() + "}", with a time to live from the
// refresh token's (or the access token's) expiry. The lock is a lease:
// SET NX PX with a random owner value, renewed by its owner while held,
// released only by its owner. Every save is fenced: it is written only by
// the holder of the lease, or by a process whose last read is still the
// newest entry, so a process that was paused past its lease can never
// overwrite a newer rotated token.
//
// When Redis is unreachable or slow (each operation is bounded by
// Config.Timeout), the store degrades instead of failing: Load finds
// nothing, Lock returns at once without a lease, so the engine keeps
// serving its own token and fetches on its own; one warning is logged
// when Redis goes away and one record when it answers again.
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

// ErrFenced means a save was refused: this process no longer holds the
// lease and another process saved a newer token since this one read it.
// The newer token stays; the engine reads it at its next refresh.
var ErrFenced = errors.New("redisstore: a newer token was saved by another process; not overwritten")

// Config configures a [Store]. Only Client is required.
type Config struct {
	// Client is a standalone, Sentinel or Cluster client. Required.
	Client redis.UniversalClient
	// Prefix starts every key; empty means DefaultPrefix. Stores with
	// different prefixes never see each other's entries.
	Prefix string
	// LeaseTTL is the lock's lease; the holder renews it every third of
	// it while it holds the lock, so a process that dies releases it
	// within LeaseTTL. Zero means DefaultLeaseTTL.
	LeaseTTL time.Duration
	// Timeout bounds each Redis operation; past it Redis counts as away.
	// Zero means DefaultTimeout.
	Timeout time.Duration
	// LockPoll is the wait between attempts to take a held lock; zero
	// means DefaultLockPoll.
	LockPoll time.Duration
	// Now is the clock of the entries' saved_at and time to live; nil
	// means time.Now.
	Now func() time.Time
	// Logger receives the changes of Redis' state and the entries
	// ignored, never a token; nil means silent.
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
	now      func() time.Time
	log      *slog.Logger
	degraded atomic.Bool

	mu    sync.Mutex        // guards owner and gen
	owner map[string]string // key name -> this process's lease owner value
	gen   map[string]int64  // key name -> the generation this process last read or wrote
}

var (
	_ auth.Store  = (*Store)(nil)
	_ auth.Locker = (*Store)(nil)
)

// New returns a store on cfg.Client. It performs no I/O.
func New(cfg Config) (*Store, error) {
	if cfg.Client == nil {
		return nil, auth.ConfigError("redisstore: Config.Client is required")
	}
	if cfg.LeaseTTL < 0 || cfg.Timeout < 0 || cfg.LockPoll < 0 {
		return nil, auth.ConfigError("redisstore: durations must not be negative")
	}
	s := &Store{rdb: cfg.Client, prefix: cfg.Prefix, lease: cfg.LeaseTTL, timeout: cfg.Timeout, poll: cfg.LockPoll,
		now: cfg.Now, log: cfg.Logger, owner: map[string]string{}, gen: map[string]int64{}}
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
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// The keys of one login: the hash tag keeps both in one Cluster slot, as
// the scripts need.
func (s *Store) tokKey(name string) string   { return s.prefix + "tok:{" + name + "}" }
func (s *Store) leaseKey(name string) string { return s.prefix + "lock:{" + name + "}" }

// op bounds one Redis operation.
func (s *Store) op(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// away records that Redis failed an operation; it reports false when the
// failure is the caller's ctx ending instead.
func (s *Store) away(ctx context.Context, what string, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	if !s.degraded.Swap(true) {
		s.log.Warn("redisstore: Redis is unreachable; serving and fetching tokens without the shared cache until it answers",
			"operation", what, "error", err)
	}
	return true
}

// back records that Redis answered.
func (s *Store) back() {
	if s.degraded.Swap(false) {
		s.log.Info("redisstore: Redis answers again; the shared cache is back")
	}
}

// Load returns the token saved for key, or (nil, nil) when none is usable
// or Redis is away. Only a done ctx is an error.
func (s *Store) Load(ctx context.Context, key auth.StoreKey) (*auth.Token, error) {
	name := key.Name()
	octx, cancel := s.op(ctx)
	defer cancel()
	vals, err := s.rdb.HMGet(octx, s.tokKey(name), "gen", "data").Result()
	if err != nil {
		if s.away(ctx, "load", err) {
			return nil, nil
		}
		return nil, ctx.Err()
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

// saveScript writes an entry if the caller holds the lease or read the
// newest generation: KEYS tok, lease; ARGV owner ("" for none), the
// generation read (-1 for none), the entry, the expiry in Unix ms (0 for
// none). It returns the new generation, or -1 when fenced.
var saveScript = redis.NewScript(`
local gen = tonumber(redis.call('HGET', KEYS[1], 'gen') or '0')
local holder = redis.call('GET', KEYS[2])
if not ((ARGV[1] ~= '' and holder == ARGV[1]) or tonumber(ARGV[2]) == gen) then
  return -1
end
redis.call('HSET', KEYS[1], 'gen', gen + 1, 'data', ARGV[3])
if tonumber(ARGV[4]) > 0 then
  redis.call('PEXPIREAT', KEYS[1], ARGV[4])
else
  redis.call('PERSIST', KEYS[1])
end
return gen + 1
`)

// Save writes tok for key, fenced (see ErrFenced), with a time to live
// that ends when the token can no longer be used.
func (s *Store) Save(ctx context.Context, key auth.StoreKey, tok *auth.Token) error {
	entry, err := auth.EncodeStoreEntry(key, tok, s.now())
	if err != nil {
		return err
	}
	name := key.Name()
	s.mu.Lock()
	owner := s.owner[name]
	read, ok := s.gen[name]
	s.mu.Unlock()
	if !ok {
		read = -1
	}
	var expireAt int64
	if t := until(tok); !t.IsZero() {
		expireAt = t.UnixMilli()
	}
	octx, cancel := s.op(ctx)
	defer cancel()
	gen, err := saveScript.Run(octx, s.rdb, []string{s.tokKey(name), s.leaseKey(name)}, owner, read, entry, expireAt).Int64()
	if err != nil {
		s.away(ctx, "save", err)
		return fmt.Errorf("redisstore: save: %w", err)
	}
	s.back()
	if gen < 0 {
		return ErrFenced
	}
	s.mu.Lock()
	s.gen[name] = gen
	s.mu.Unlock()
	return nil
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
		s.away(ctx, "delete", err)
		return fmt.Errorf("redisstore: delete: %w", err)
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
// renews it until the returned function releases it. When Redis is away
// it returns at once without a lease (a no-op release), so that the
// engine fetches on its own rather than fail.
func (s *Store) Lock(ctx context.Context, key auth.StoreKey) (func(), error) {
	name := key.Name()
	lk := s.leaseKey(name)
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails
	owner := hex.EncodeToString(b)
	for {
		octx, cancel := s.op(ctx)
		ok, err := s.rdb.SetNX(octx, lk, owner, s.lease).Result()
		cancel()
		if err != nil {
			if s.away(ctx, "lock", err) {
				return func() {}, nil
			}
			return nil, ctx.Err()
		}
		s.back()
		if ok {
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
	s.owner[name] = owner
	s.mu.Unlock()

	stop, done := make(chan struct{}), make(chan struct{})
	go func() { // renew while held
		defer close(done)
		tick := time.NewTicker(s.lease / 3)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				octx, cancel := s.op(context.Background())
				err := renewScript.Run(octx, s.rdb, []string{lk}, owner, s.lease.Milliseconds()).Err()
				cancel()
				if err != nil {
					s.away(context.Background(), "renew", err)
				}
			case <-stop:
				return
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(stop)
			<-done
			s.mu.Lock()
			if s.owner[name] == owner {
				delete(s.owner, name)
			}
			s.mu.Unlock()
			octx, cancel := s.op(context.Background())
			defer cancel()
			if err := releaseScript.Run(octx, s.rdb, []string{lk}, owner).Err(); err != nil {
				s.away(context.Background(), "unlock", err) // the lease ends on its own
			}
		})
	}, nil
}
