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
	store   Store
	locker  Locker // nil for a store that is not one
	key     StoreKey
	closing chan struct{} // closed by the engine's Close
	owner   string        // this engine's name in spend records
	host    string        // this machine's name in spend records
	clock   Clock
	log     *slog.Logger
	dpop    *DPoPKey // the handler's DPoP key, for stored tokens whose key the store could not keep

	mu sync.Mutex // guards the entry for a store that is not a Locker
}

func newCustody(store Store, key StoreKey, clock Clock, log *slog.Logger, obs *observing) *custody {
	b := make([]byte, 12)
	_, _ = rand.Read(b) // never fails
	c := &custody{store: store, key: key, owner: hex.EncodeToString(b), clock: clock, log: log, closing: make(chan struct{})}
	c.host, _ = os.Hostname()
	liveOwners.Store(c.owner, struct{}{})
	if l, ok := store.(Locker); ok {
		c.locker = l
		if obs.o != nil {
			c.locker = observedLocker{inner: l, b: obs}
		}
	}
	if obs.o != nil {
		c.store = observedStore{inner: store, b: obs}
	}
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

// obtain returns a token from the store or the fetch function. With a
// store it holds the store's lock around "reload, record the spend, fetch,
// save" (see custody): the token the provider issued is saved before
// anything else can fail. fetched is false for a token another process
// saved.
func (e *Engine) obtain(ctx context.Context, call *fetchCall) (tok *Token, fetched bool, err error) {
	e.mu.Lock()
	rej := call.rej
	e.mu.Unlock()
	current := e.st.Load().tok
	c := e.cust
	if c == nil {
		return e.fetchAlone(ctx, call, current)
	}
	unlock, err := c.lock(ctx)
	if err != nil {
		if ctx.Err() == nil && current != nil && current.RefreshToken.IsZero() {
			// The store is unreachable, and this login holds no refresh
			// token (client credentials, an assertion): nothing to
			// guard, so fetch on our own rather than fail. Without a
			// token yet, the grant may spend one it was configured with
			// (the RefreshToken handler), so that waits for the store.
			e.log.Debug("auth: token store unavailable; fetching without it", "error", err)
			return e.fetchAlone(ctx, call, current)
		}
		return nil, false, err
	}
	defer unlock()
	stored, err := c.load(ctx)
	if err != nil {
		return nil, false, err
	}
	if e.foreign(stored, current, rej, e.valid()) && e.adopt(ctx, stored) {
		return stored, false, nil
	}
	src := current
	switch {
	case current.gen() > 0 && newer(current, stored):
		// Ours is newer than the stored one. Persist first; never spend
		// the older one.
		back := current.Clone()
		if !c.ownFailedSave(stored, current) {
			// The store lost the login (Redis restarted without its
			// data, a failover, an eviction, a deleted file): another
			// process may hold a newer token than ours, and comes to
			// restore it when its token is due. Ours waits for that,
			// counted from the first process that saved one back.
			at := e.clock.Now().UTC()
			if stored != nil && stored.meta != nil && !stored.meta.reseeded.IsZero() {
				at = stored.meta.reseeded
			}
			back.setMeta(func(m *tokenMeta) { m.reseeded = at })
			e.log.Warn("auth: the token store had lost this login; saved ours back, and spending it only if no process restores a newer one first",
				"until", back.reseededUntil())
		}
		if err := c.save(ctx, back); err != nil {
			return nil, false, Transient(fmt.Errorf("%w: %w", errUnrecorded, err))
		}
		src = back
	case stored != nil && !stored.RefreshToken.IsZero():
		src = stored // another process may have rotated it: ours is spent
	}
	if src != nil && !src.RefreshToken.IsZero() && !e.canProve(src) {
		// Bound to a DPoP key this process does not hold: it cannot spend
		// the refresh token, so it records no spend (which would make the
		// process that holds the key drop it) and logs in anew.
		src = src.Clone()
		src.RefreshToken = Secret{}
		src.setMeta(func(m *tokenMeta) { m.spend = nil })
	}
	if src != nil && !src.RefreshToken.IsZero() {
		if until := src.reseededUntil(); e.clock.Now().Before(until) {
			return nil, false, Transient(fmt.Errorf("%w (until %s)", errReseeding, until.UTC().Format(time.RFC3339)))
		}
	}
	lost := src == stored && c.lostBy(stored)
	if lost && c.ownerBusy(stored.spendRec(), e.clock.Now()) {
		rec := stored.spendRec()
		return nil, false, Transient(fmt.Errorf("%w (process %d on %q, since %s)", errSpendInProgress,
			rec.PID, rec.Host, rec.At.Format(time.RFC3339)))
	}
	if lost {
		// Its owner presented the refresh token and is gone without
		// saving the answer: the grant gets the login without it.
		src = stored.Clone()
		src.RefreshToken = Secret{}
		src.setMeta(func(m *tokenMeta) { m.spend = nil })
		e.mu.Lock()
		e.stats.LostLogins++
		e.mu.Unlock()
		e.log.Warn("auth: the stored login's refresh token was being spent by a process that stopped before saving the answer; not presenting it again",
			"spent_at", stored.spendRec().At, "pid", stored.spendRec().PID)
	}
	if e.st.Load().epoch != call.epoch {
		return nil, false, errSuperseded
	}
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	spends := src != nil && !src.RefreshToken.IsZero()
	if spends {
		if err := c.beginSpend(ctx, src, e.timeout); err != nil {
			return nil, false, err
		}
		call.spending.Store(true)
	}
	tok, err = e.fetchFrom(ctx, src)
	call.spending.Store(false)
	if err != nil {
		if spends && answered(err) {
			c.endSpend(ctx, src)
		}
		if lost && errors.Is(err, ErrLoginRequired) {
			err = fmt.Errorf("%w: %w", ErrLoginLost, err)
		}
		return nil, false, err
	}
	tok.setMeta(func(m *tokenMeta) { m.gen = nextGen(src, stored, current) })
	if e.st.Load().epoch != call.epoch {
		return nil, false, errSuperseded // a login or logout came meanwhile
	}
	if err := c.save(ctx, tok); err != nil {
		e.mu.Lock()
		e.stats.SaveFailures++
		e.mu.Unlock()
		e.log.Warn("auth: the new token could not be saved; it is kept in memory and saved again in the background", "error", err)
		e.persistLater(tok)
	}
	return tok, true, nil
}

// fetchAlone fetches without a store: from current, which holds no
// refresh token that another process could spend.
func (e *Engine) fetchAlone(ctx context.Context, call *fetchCall, current *Token) (*Token, bool, error) {
	if e.st.Load().epoch != call.epoch {
		return nil, false, errSuperseded
	}
	tok, err := e.fetchFrom(ctx, current)
	if err != nil {
		return nil, false, err
	}
	if g := current.gen(); g > 0 {
		tok.setMeta(func(m *tokenMeta) { m.gen = g + 1 })
	}
	return tok, true, nil
}

// fetchFrom runs the fetch function on src and returns its token, which
// carries src's verified identity until a check says otherwise.
func (e *Engine) fetchFrom(ctx context.Context, src *Token) (*Token, error) {
	e.mu.Lock()
	e.stats.Fetches++
	e.mu.Unlock()
	tok, err := e.fetch(ctx, src.Clone())
	if err != nil {
		return nil, err
	}
	if tok == nil || tok.AccessToken.IsZero() {
		return nil, fmt.Errorf("%w: the fetch returned no access token", ErrMalformedToken)
	}
	tok = tok.Clone()
	if e.cust != nil || tok.meta != nil || src.ident() != nil { // no bookkeeping to keep without them
		now := e.clock.Now().UTC()
		tok.setMeta(func(m *tokenMeta) {
			m.spend, m.reseeded, m.obtained = nil, time.Time{}, now
			if m.ident == nil {
				m.ident = src.ident()
			}
		})
	}
	capExpiry(tok)
	return tok, nil
}

// adopt decides whether a token another process saved is served. One that
// records its verified identity is: the store is trusted (a private file,
// an encrypted entry, one's own Redis), so serving it takes no provider
// request. An older one is checked again; a check that fails for want of
// the provider does not stop it from being served.
func (e *Engine) adopt(ctx context.Context, stored *Token) bool {
	if !e.holdsKey(stored) {
		e.log.Debug("auth: the stored token is bound to a DPoP key this handler does not hold; not serving it", "jkt", stored.DPoPKey.jkt)
		return false
	}
	if e.check != nil && stored.ident() == nil {
		id, err := e.check(ctx, stored.Clone())
		switch {
		case err == nil:
			*stored = *stored.WithIdentity(id)
		case IsTransient(err):
			e.log.Debug("auth: the stored token could not be checked now; serving it", "error", err)
		default:
			e.log.Debug("auth: the stored token fails its check; refreshing it", "error", err)
			return false
		}
	}
	e.mu.Lock()
	e.stats.StoreHits++
	e.mu.Unlock()
	return true
}

// valid reports whether the engine serves valid credentials now.
func (e *Engine) valid() bool {
	s := e.st.Load()
	return s.creds != nil && e.clock.Now().UnixNano() < s.serveUntil
}

// foreign reports whether stored is a token another process (or run) saved
// after ours that is worth serving instead of fetching: not yet due for
// refresh, or — when callers wait because nothing valid is held — still
// valid, so that a stored login is served at once (and refreshed in the
// background) even while the provider is unreachable. Our own token is
// what is being refreshed, an older one is no use, and a rejected one
// neither.
func (e *Engine) foreign(stored, current *Token, rej *rejection, early bool) bool {
	if stored == nil || stored.AccessToken.IsZero() || rej != nil && stored.AccessToken.Equal(rej.access) ||
		current != nil && (stored.AccessToken.Equal(current.AccessToken) || current.gen() > stored.gen()) {
		return false
	}
	if noExpiry(stored.Expiry) {
		return true
	}
	now := e.clock.Now()
	refreshAt, serveUntil := e.schedule(stored, now, 0)
	if early {
		return now.Before(refreshAt)
	}
	return now.Before(serveUntil)
}

// resaveIdentity saves tok again once its check named who it belongs to,
// if the store still holds it: a stored login then names its user without
// the provider.
func (e *Engine) resaveIdentity(ctx context.Context, tok *Token) {
	if e.cust == nil {
		return
	}
	unlock, err := e.cust.lock(ctx)
	if err != nil {
		return
	}
	defer unlock()
	if stored, err := e.cust.load(ctx); err != nil || stored == nil || stored.gen() != tok.gen() || !stored.AccessToken.Equal(tok.AccessToken) {
		return
	}
	if err := e.cust.store.Save(context.WithoutCancel(ctx), e.cust.key, tok); err != nil {
		e.log.Debug("auth: the verified identity was not saved with the token", "error", err)
	}
}

// persistLater saves tok, whose save failed, again in the background until
// it is stored (or a newer token is), the engine's login changes, or
// persistFor has passed: another process that finds this engine's spend
// record waits for it meanwhile. Close makes it try once more and stop.
func (e *Engine) persistLater(tok *Token) {
	epoch := e.st.Load().epoch
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		wait, end := 250*time.Millisecond, time.Now().Add(persistFor)
		for last := false; !last; wait = min(2*wait, 5*time.Second) {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-e.cust.closing:
				t.Stop()
				last = true
			}
			last = last || time.Now().After(end)
			if s := e.st.Load(); s.epoch != epoch || s.tok != nil && s.tok.gen() > tok.gen() {
				return // a new login or logout, or a newer token of ours (saved with it)
			}
			if e.persistOnce(tok) {
				return
			}
		}
		e.log.Warn("auth: gave up saving a token whose save failed; it stays in memory")
	}()
}

// persistOnce saves tok under the store's lock unless the store holds it
// or a newer token; it reports whether nothing is left to do.
func (e *Engine) persistOnce(tok *Token) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	unlock, err := e.cust.lock(ctx)
	if err != nil {
		return false
	}
	defer unlock()
	stored, err := e.cust.load(ctx)
	if err != nil {
		return false
	}
	if stored != nil && stored.gen() >= tok.gen() {
		return true
	}
	return e.cust.store.Save(ctx, e.cust.key, tok) == nil
}
