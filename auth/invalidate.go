package auth

import "strings"

// A service's rejection of the credential being served, and what it costs.

// Invalidate reports that svc rejected the credential value rejected; see
// [Invalidator]. It drops the current credentials if rejected carries their
// access token (or rejected is empty), so that the next caller fetches new
// ones.
//
// Rejections are bounded: when a token that was fetched because its
// predecessor was rejected is itself rejected within the backoff of that
// streak (EngineConfig.Backoff: 250 ms, then 0.5 s, 1 s... up to a minute),
// the rejection is deferred — the token keeps being served and the
// service's answers reach the caller as they are — so a service that
// rejects every token costs a handful of fetches, not one per request. A
// fetch that returns the rejected token again is served again under the
// same rule (the issuer may know better than the service).
func (e *Engine) Invalidate(svc Service, rejected string) {
	e.mu.Lock()
	s := e.st.Load()
	if s.closed || s.creds == nil || s.creds.Token == nil || s.creds.Token.AccessToken.IsZero() {
		e.mu.Unlock()
		return
	}
	served := s.creds.Token.AccessToken
	if rejected != "" && !strings.Contains(rejected, served.Reveal()) {
		e.mu.Unlock()
		return // an older credential, already replaced
	}
	e.notifyRejected(svc)
	if e.clock.Now().UnixNano() < s.quietUntil {
		e.stats.RejectionsDeferred++
		deferred := e.stats.RejectionsDeferred
		e.mu.Unlock()
		if deferred&(deferred-1) == 0 { // 1, 2, 4, 8...
			e.log.Warn("auth: a service keeps rejecting new credentials; fetching again after the backoff",
				"service", string(svc), "rejected_in_a_row", s.rejections, "deferred", deferred)
		}
		return
	}
	rej := &rejection{access: served, by: svc}
	e.setLocked(&state{epoch: s.epoch, tok: s.tok, rejections: s.rejections + 1, rej: rej})
	if c := e.call; c != nil && c.rej == nil && c.epoch == s.epoch {
		// A refresh in flight replaces the rejected token: the streak
		// goes on with its result.
		c.rejections, c.rej = s.rejections+1, rej
	}
	e.failures, e.lastErr, e.retryAt = 0, nil, 0
	e.stats.Invalidations++
	e.mu.Unlock()
	e.log.Info("auth: credential rejected; the next use fetches a new one", "service", string(svc))
}

// notifyRejected tells OnRejected of a rejection by svc: in one goroutine
// at a time, the rejections that come meanwhile coalesced into one more
// call with the latest service.
func (e *Engine) notifyRejected(svc Service) {
	if e.onRejected == nil {
		return
	}
	e.rejected.Store(&svc)
	if !e.notifying.CompareAndSwap(false, true) {
		return // the running goroutine takes it
	}
	go func() {
		for {
			for p := e.rejected.Swap(nil); p != nil; p = e.rejected.Swap(nil) {
				e.onRejected(*p)
			}
			e.notifying.Store(false)
			// A rejection stored after the last Swap and before the Store
			// found the flag set: take it, unless another goroutine did.
			if e.rejected.Load() == nil || !e.notifying.CompareAndSwap(false, true) {
				return
			}
		}
	}()
}
