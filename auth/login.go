package auth

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Logins made and ended outside the fetch: Set installs a login, Logout
// ends one. Each starts a new login epoch through the one install path.

// Set installs a token obtained outside the engine (by an interactive login,
// say), serves it from now on and saves it to the store. It starts a new
// login epoch: a fetch in flight is cancelled and can neither install nor
// save its result (TestEngineSetBeatsFetchInFlight,
// TestEngineSetBeatsFetchInFlightInTheStore). A failure to save is logged; the token is served anyway.
// A token made with [Token.WithIdentity] records who it belongs to.
func (e *Engine) Set(ctx context.Context, tok *Token) error {
	if tok == nil || tok.AccessToken.IsZero() {
		return fmt.Errorf("%w: no access token", ErrMalformedToken)
	}
	tok = tok.Clone()
	now := e.clock.Now().UTC()
	tok.setMeta(func(m *tokenMeta) { m.spend, m.reseeded, m.obtained = nil, time.Time{}, now })
	capExpiry(tok)
	if _, err := e.prepareToken(tok.Clone()); err != nil {
		return err
	}
	install := func(epoch uint64, tok *Token) *state {
		creds, _ := e.prepareToken(tok.Clone())
		next, err := e.newState(epoch, tok, creds, 0)
		if err != nil {
			next = &state{epoch: epoch, tok: tok}
		}
		e.cancelCallLocked()
		e.setLocked(next)
		e.failures, e.lastErr, e.retryAt = 0, nil, 0
		return next
	}
	e.mu.Lock()
	cur := e.st.Load()
	if cur.closed {
		e.mu.Unlock()
		return ErrClosed
	}
	tok.setMeta(func(m *tokenMeta) { m.gen = nextGen(cur.tok) })
	first := install(cur.epoch+1, tok)
	e.mu.Unlock()
	if e.cust == nil {
		return nil
	}
	unlock, err := e.cust.lock(ctx)
	if err != nil {
		e.log.Warn("auth: token not saved; it stays in memory", "error", err)
		return nil
	}
	defer unlock()
	saved := tok
	if e.st.Load().epoch == first.epoch {
		// Newer than anything stored, whoever stored it.
		stored, _ := e.cust.store.Load(ctx, e.cust.key)
		saved = tok.Clone()
		saved.setMeta(func(m *tokenMeta) { m.gen = nextGen(stored, tok) })
		if err := e.cust.save(ctx, saved); err != nil {
			e.log.Warn("auth: token not saved; it stays in memory", "error", err)
		}
	}
	// A fetch begun since the first epoch may have taken the previous
	// login's token from the store: start another one, under the lock.
	e.mu.Lock()
	if e.st.Load().epoch == first.epoch {
		install(first.epoch+1, saved)
	}
	e.mu.Unlock()
	return nil
}

// Logout ends the login: it drops the credentials, revokes the tokens at
// their issuer (with EngineConfig.Revoke: the one held and the stored one,
// which another process may have rotated) and deletes the stored entry,
// all under the store's lock. It starts a new login epoch at once, so that
// a refresh already running can neither install nor save its token, and
// another once the stored token is gone, so that a reader who came
// meanwhile cannot take it back from the store.
//
// The local logout happens whatever the provider answers: an error
// wrapping [ErrNotRevoked] means the tokens are gone here but the
// provider may still accept them until they expire.
func (e *Engine) Logout(ctx context.Context) error {
	e.mu.Lock()
	cur := e.st.Load()
	held := cur.tok
	e.cancelCallLocked()
	first := &state{epoch: cur.epoch + 1, closed: cur.closed}
	e.setLocked(first)
	e.failures, e.lastErr, e.retryAt = 0, nil, 0
	e.mu.Unlock()
	if e.cust == nil {
		return e.revokeAll(ctx, held)
	}
	unlock, err := e.cust.lock(ctx)
	if err != nil {
		return errors.Join(err, e.revokeAll(ctx, held))
	}
	defer unlock()
	var revokeErr error
	if e.revoke != nil {
		stored, lerr := e.cust.store.Load(ctx, e.cust.key)
		if lerr != nil {
			e.log.Warn("auth: logout: the stored token could not be read to revoke it", "error", lerr)
		}
		revokeErr = e.revokeAll(ctx, held, stored)
	}
	// The local logout happens whatever the provider did: a revocation
	// that used up the caller's deadline must not keep the login stored.
	err = e.cust.store.Delete(context.WithoutCancel(ctx), e.cust.key)
	e.mu.Lock()
	if e.st.Load().epoch == first.epoch {
		e.cancelCallLocked()
		e.setLocked(&state{epoch: first.epoch + 1, closed: first.closed})
	}
	e.mu.Unlock()
	return errors.Join(err, revokeErr)
}

// revokeAll revokes each distinct token of toks with the configured
// Revoke; failures wrap ErrNotRevoked.
func (e *Engine) revokeAll(ctx context.Context, toks ...*Token) (err error) {
	if e.revoke == nil {
		return nil
	}
	ctx, done := e.obs.op(ctx, "revoke")
	defer func() { done(err) }()
	var errs []error
	for i, t := range toks {
		if t == nil || (t.AccessToken.IsZero() && t.RefreshToken.IsZero()) {
			continue
		}
		dup := false
		for _, o := range toks[:i] {
			dup = dup || (o != nil && o.AccessToken.Equal(t.AccessToken) && o.RefreshToken.Equal(t.RefreshToken))
		}
		if dup {
			continue
		}
		if err := e.revoke(ctx, t); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	err = fmt.Errorf("%w: %w", ErrNotRevoked, errors.Join(errs...))
	e.log.Warn("auth: logout: the provider did not confirm the revocation; the tokens are gone here", "error", err)
	return err
}
