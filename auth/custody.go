package auth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"
)

// Identity is who a login belongs to, as the ID token verified when its
// token was obtained named them. The engine records it with the token (from
// [CheckFunc]) and the stores keep it, so that a stored login names its
// user without asking the provider again.
type Identity struct {
	// Subject is the ID token's "sub".
	Subject string `json:"sub,omitempty"`
	// Username is the name the handler read from the ID token.
	Username string `json:"username,omitempty"`
}

// IsZero reports whether id names nobody.
func (id Identity) IsZero() bool { return id == Identity{} }

// Identity returns who t belongs to, as verified when it was obtained; zero
// when that is unknown (no ID token, or a token stored by an older version).
func (t *Token) Identity() Identity {
	if id := t.ident(); id != nil {
		return *id
	}
	return Identity{}
}

// WithIdentity returns a copy of t that records id as verified for it. A
// login made outside the engine (see [Engine.Set]) hands its verified
// identity over this way.
func (t *Token) WithIdentity(id Identity) *Token {
	c := t.Clone()
	c.setMeta(func(m *tokenMeta) {
		m.ident = nil
		if !id.IsZero() {
			m.ident = &id
		}
	})
	return c
}

// spendRecord says that an owner presented (or was about to present) a
// token's refresh token to the provider at a time, and had not yet saved
// what came back. It is stored with the token.
type spendRecord struct {
	Owner string    `json:"owner"`
	Host  string    `json:"host,omitempty"`
	PID   int       `json:"pid,omitempty"`
	At    time.Time `json:"at"`
	// Until is when the owner will have saved the answer or given up:
	// the spend's start, plus its fetch's bound, plus saving.
	Until time.Time `json:"until,omitzero"`
}

// ownerBusy reports whether rec's owner may still save what the provider
// sent back: before rec.Until, unless it ran on this machine and its
// process is gone (killed). Another machine's owner is waited for until
// rec.Until, since its lease may have lapsed while it still works.
func (c *custody) ownerBusy(rec *spendRecord, now time.Time) bool {
	until := rec.Until
	if until.IsZero() {
		until = rec.At.Add(2*time.Minute + persistFor)
	}
	if !now.Before(until) {
		return false
	}
	switch {
	case rec.Host == c.host && rec.PID == os.Getpid():
		_, open := liveOwners.Load(rec.Owner) // an engine of this process
		return open
	case rec.Host == c.host && rec.PID != 0:
		return processAlive(rec.PID)
	}
	return true
}

// liveOwners holds the owners (engines) of this process that are not
// closed: a spend record of this process names one of them or a closed one.
var liveOwners sync.Map // owner -> struct{}

// close marks the custody's owner as gone.
func (c *custody) close() { liveOwners.Delete(c.owner) }

// ErrLoginLost means the stored login's refresh token may have been spent
// by a process that stopped before saving what the provider sent back: it
// is not presented again, since a provider with reuse detection would
// revoke the whole login. It comes with [ErrLoginRequired] when the grant
// cannot log in again without a person.
var ErrLoginLost = errors.New("auth: the stored login was lost: a process stopped while it refreshed the token, and a refresh token is never presented twice")

// errSpendInProgress ends an attempt that found another process's spend
// record whose owner may still save what the provider sent back.
var errSpendInProgress = errors.New("auth: another process is refreshing this login and has not saved the result yet; waiting for it")

// errUnrecorded ends an attempt that could not record its spend.
var errUnrecorded = errors.New("auth: the token store could not record that the refresh token is being spent; not spending it")

// errReseeding ends an attempt to spend a refresh token that a process
// saved back into a store that had lost it, while other processes may
// still restore a newer one.
var errReseeding = errors.New("auth: the token store lost this login and it was saved back; waiting for other processes to restore a newer token before spending this one")

// maxReseedWait bounds reseedWait.
const maxReseedWait = 5 * time.Minute

// reseedWait is how long a refresh token saved back into a store that had
// lost it waits before it is spent, counted from the first process that
// saved one back: one lifetime of its access token — in which every
// process that holds a newer token and uses it comes due, finds the
// store's older token and saves its own back — at most maxReseedWait, and
// 1 minute when the lifetime is unknown. A process holding a newer token
// that it does not use, or that is not due within maxReseedWait, is not
// waited for: a store that can lose its data (Redis without persistence)
// risks that login whenever it does.
func reseedWait(tok *Token) time.Duration {
	m := tok.meta
	if m == nil || m.obtained.IsZero() || noExpiry(tok.Expiry) || !tok.Expiry.After(m.obtained) {
		return time.Minute
	}
	return min(tok.Expiry.Sub(m.obtained), maxReseedWait)
}

// reseededUntil is when tok's refresh token may be spent, if a process
// saved it back into a store that had lost it; zero otherwise.
func (t *Token) reseededUntil() time.Time {
	if t.meta == nil || t.meta.reseeded.IsZero() {
		return time.Time{}
	}
	return t.meta.reseeded.Add(reseedWait(t))
}

// ownFailedSave reports whether stored is the token this engine spent to
// get current, whose save failed: current is then the newest there is.
func (c *custody) ownFailedSave(stored, current *Token) bool {
	rec := stored.spendRec()
	return rec != nil && rec.Owner == c.owner && current.gen() == stored.gen()+1
}

// saveAttempts bounds the attempts to save a token the provider issued.
const saveAttempts = 4

// closeGrace is how long Close lets a refresh that has reached the
// provider finish and save its result.
const closeGrace = 5 * time.Second

// persistFor bounds how long a token whose save failed is saved again in
// the background (see Engine.persistLater).
const persistFor = 2 * time.Minute

// custody keeps an engine's tokens in its store, under one ordering rule:
// every change of the stored entry — a spend record, a fetched token, a
// login, a logout — happens under the store's lock (a Locker's, or the
// engine's own mutex for a store that is not one), and the newer token
// wins: tokens carry a generation that each save raises.
//
// Spend protocol: before a refresh token is presented, the entry is saved
// again with a spend record naming this engine. The fetched token replaces
// it. A holder of the lock that finds another owner's record knows that
// owner is gone from the spend (it would still hold the lock otherwise)
// and never presents that refresh token: the grant gets the token without
// it, to make a full grant where it can.
type custody struct {
	store  Store
	locker Locker // nil for a store that is not one
	key    StoreKey
	owner  string // this engine's name in spend records
	host   string // this machine's name in spend records
	clock  Clock
	log    *slog.Logger

	mu sync.Mutex // guards the entry for a store that is not a Locker
}

func newCustody(store Store, key StoreKey, clock Clock, log *slog.Logger) *custody {
	b := make([]byte, 12)
	_, _ = rand.Read(b) // never fails
	c := &custody{store: store, key: key, owner: hex.EncodeToString(b), clock: clock, log: log}
	c.host, _ = os.Hostname()
	liveOwners.Store(c.owner, struct{}{})
	c.locker, _ = store.(Locker)
	return c
}

// lock takes the entry's lock.
func (c *custody) lock(ctx context.Context) (func(), error) {
	if c.locker == nil {
		c.mu.Lock()
		return c.mu.Unlock, nil
	}
	unlock, err := c.locker.Lock(ctx, c.key)
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		return nil, Transient(fmt.Errorf("auth: lock token store: %w", err))
	}
	return unlock, nil
}

// load reads the entry; a store that cannot be read is a transient
// failure, never "nothing stored": a refresh token is spent only once the
// store said what it holds.
func (c *custody) load(ctx context.Context) (*Token, error) {
	tok, err := c.store.Load(ctx, c.key)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, Transient(fmt.Errorf("auth: read token store: %w", err))
	}
	if tok != nil {
		capExpiry(tok)
	}
	return tok, nil
}

// lostBy reports whether stored carries the spend record of another owner.
func (c *custody) lostBy(stored *Token) bool {
	rec := stored.spendRec()
	return rec != nil && rec.Owner != c.owner && !stored.RefreshToken.IsZero()
}

// beginSpend records, under the lock, that src's refresh token is about to
// be presented by a fetch bounded by fetchTimeout (0: none).
func (c *custody) beginSpend(ctx context.Context, src *Token, fetchTimeout time.Duration) error {
	rec := src.Clone()
	now := c.clock.Now().UTC()
	r := &spendRecord{Owner: c.owner, Host: c.host, PID: os.Getpid(), At: now}
	if fetchTimeout > 0 {
		r.Until = now.Add(fetchTimeout + persistFor)
	}
	rec.setMeta(func(m *tokenMeta) { m.spend = r })
	if err := c.store.Save(context.WithoutCancel(ctx), c.key, rec); err != nil {
		return Transient(fmt.Errorf("%w: %w", errUnrecorded, err))
	}
	return nil
}

// endSpend withdraws the record of a spend that the provider answered
// without consuming the refresh token (an error answer, or a request that
// never left).
func (c *custody) endSpend(ctx context.Context, src *Token) {
	clean := src.Clone()
	clean.setMeta(func(m *tokenMeta) { m.spend = nil })
	if err := c.store.Save(context.WithoutCancel(ctx), c.key, clean); err != nil {
		c.log.Debug("auth: spend record not withdrawn; other processes will not present this refresh token", "error", err)
	}
}

// save writes tok, retrying a failed write a few times: it may be the only
// copy of a rotated refresh token. It reports the last failure.
func (c *custody) save(ctx context.Context, tok *Token) error {
	var err error
	for attempt := 1; attempt <= saveAttempts; attempt++ {
		if err = c.store.Save(context.WithoutCancel(ctx), c.key, tok); err == nil {
			return nil
		}
		if attempt < saveAttempts {
			// Real time, not the engine's clock: the wait is for a disk or
			// a network to recover, whatever time a test pretends it is.
			time.Sleep(time.Duration(attempt) * 50 * time.Millisecond)
		}
	}
	return err
}

// answered reports whether err shows that the provider did not consume the
// refresh token: it answered with an error, or the request never left (no
// connection). A timeout or a broken connection after the request left is
// not: the provider may have rotated the token.
func answered(err error) bool {
	var oe *OAuthError
	var re *ResponseError
	if errors.As(err, &oe) || errors.As(err, &re) {
		return true
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

// newer reports whether a is a later token of the login than b.
func newer(a, b *Token) bool {
	return a != nil && (b == nil || a.gen() > b.gen())
}

// nextGen is the generation of a token that replaces those given.
func nextGen(toks ...*Token) uint64 {
	var g uint64
	for _, t := range toks {
		if t.gen() > g {
			g = t.gen()
		}
	}
	return g + 1
}
