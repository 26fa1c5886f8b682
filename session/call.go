package session

import (
	"context"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// call is one request through the session. One allocation holds the
// request for go-retryablehttp, the session's own copy of the caller's
// request (the caller's is never modified; the copy's header map is the
// session's to fill in with credentials) and the first attempt.
//
// A call is also the context of its request while go-retryablehttp waits
// between attempts: the caller's context, exactly (every method forwards
// to it), so that the wait is bounded by the caller alone and not cut
// short by the attempt that just ended.
type call struct {
	rr    retryablehttp.Request
	req   http.Request
	first attempt
	orig  *http.Request   // the caller's request
	ctx   context.Context // the caller's context
	once  bool            // the request may not be sent twice
	cur   *attempt        // the last attempt; touched only by the calling goroutine
}

// Deadline returns the caller's deadline.
func (c *call) Deadline() (time.Time, bool) { return c.ctx.Deadline() }

// Done returns the caller's Done channel.
func (c *call) Done() <-chan struct{} { return c.ctx.Done() }

// Err returns the caller's Err.
func (c *call) Err() error { return c.ctx.Err() }

// Value returns the caller's values.
func (c *call) Value(key any) any { return c.ctx.Value(key) }

// attempt is the context of one attempt of a call, redirects included: the
// caller's context, bounded by the attempt timeout. It also holds room for
// the header values of the attempt's request.
//
// It keeps context.Context's contract for its whole life: its Deadline,
// Done and Err come from one context that ends when the attempt times out
// (or the caller's context ends), and its values are the caller's.
//
// The timeout costs nothing per request when the caller's context can
// never be cancelled (context.Background and values on it, the common
// case): attempts that start within the same slot of time share one timer
// context (see slots), and the attempt is that context with the caller's
// values. Contexts derived from the attempt (net/http derives one per
// request) are cancelled with the slot through the attempt's AfterFunc
// method, which the context package uses instead of starting a goroutine.
// Otherwise the attempt derives a context with its own deadline from the
// caller's, released when the attempt ends.
type attempt struct {
	// ctx holds the values, and (unless slot is set) the deadline and
	// cancellation: the caller's context, or one derived from it with the
	// attempt's deadline.
	ctx    context.Context
	slot   *slot              // when set, the deadline and cancellation come from it
	cancel context.CancelFunc // releases a derived ctx
	c      *call
	// out is the request whose header map the session may fill in: the
	// attempt's own copy. Redirect hops and replays are copied again.
	out *http.Request
	headerValues
}

// ends returns the context whose end is the attempt's end.
func (a *attempt) ends() context.Context {
	if a.slot != nil {
		return a.slot.ctx
	}
	return a.ctx
}

// Deadline returns the attempt's deadline.
func (a *attempt) Deadline() (time.Time, bool) {
	if a.slot != nil {
		return a.slot.deadline, true
	}
	return a.ctx.Deadline()
}

// Done is closed when the attempt times out or the caller's context ends.
func (a *attempt) Done() <-chan struct{} { return a.ends().Done() }

// Err says why Done is closed.
func (a *attempt) Err() error { return a.ends().Err() }

// Value returns the caller's values.
func (a *attempt) Value(key any) any { return a.ctx.Value(key) }

// AfterFunc calls f after the attempt ends, as [context.AfterFunc] does.
// The context package calls it when a context is derived from the
// attempt, instead of starting a goroutine to watch the attempt's Done.
func (a *attempt) AfterFunc(f func()) (stop func() bool) {
	return context.AfterFunc(a.ends(), f)
}

// release ends a derived context.
func (a *attempt) release() {
	if a.cancel != nil {
		a.cancel()
	}
}

// newCall prepares req to be sent by s.
func (s *Session) newCall(req *http.Request) *call {
	c := &call{orig: req, ctx: req.Context()}
	c.once = !idempotent(req) || !rewindable(req)
	c.cur = &c.first
	s.arm(&c.first, c)
	c.req = *req.WithContext(&c.first)
	c.req.Header = c.first.header(req.Header, nil, s.ua)
	c.first.out = &c.req
	c.rr.Request = &c.req
	return c
}

// retry prepares the copy of the request that go-retryablehttp makes for
// the next attempt: a new attempt context, a new header map (the last
// attempt's may still be read by its connection), a rewound body.
func (s *Session) retry(req *http.Request) error {
	c := req.Context().(*call) // set by checkRetry
	c.cur.release()
	if req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			return err
		}
		req.Body = body
	}
	a := &attempt{}
	s.arm(a, c)
	*req = *req.WithContext(a)
	req.Header = a.header(c.orig.Header, nil, s.ua)
	a.out = req
	c.cur = a
	return nil
}

// arm gives a the caller's context bounded by the attempt timeout.
func (s *Session) arm(a *attempt, c *call) {
	a.c, a.ctx = c, c.ctx
	if s.timeout <= 0 {
		return
	}
	now := time.Now()
	if dl, ok := c.ctx.Deadline(); ok && !dl.After(now.Add(s.timeout)) {
		return // the caller's deadline comes first
	}
	if c.ctx.Done() == nil {
		a.slot = s.slots.get(now)
		return
	}
	a.ctx, a.cancel = context.WithDeadline(c.ctx, now.Add(s.timeout))
}

// slots hands out shared attempt deadlines. Attempts that start within the
// same width of time get the same slot, whose deadline is the end of that
// width plus the timeout: every attempt gets at least the timeout and at
// most a sixty-fourth more. At most about 65 slots (and their timers) are
// alive per session, however many requests run.
type slots struct {
	timeout, width time.Duration
	cur            atomic.Pointer[slot]
	mu             sync.Mutex // guards the creation of a slot
}

// slot is one shared attempt deadline.
type slot struct {
	ctx      context.Context // cancelled at deadline by its own timer
	cancel   context.CancelFunc
	until    time.Time // attempts starting before this time share the slot
	deadline time.Time
}

func newSlots(timeout time.Duration) *slots {
	return &slots{timeout: timeout, width: max(timeout/64, time.Millisecond)}
}

// get returns the slot of an attempt starting at now.
func (s *slots) get(now time.Time) *slot {
	if sl := s.cur.Load(); sl != nil && now.Before(sl.until) {
		return sl
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if sl := s.cur.Load(); sl != nil && now.Before(sl.until) {
		return sl
	}
	sl := &slot{until: now.Add(s.width)}
	sl.deadline = sl.until.Add(s.timeout)
	sl.ctx, sl.cancel = context.WithDeadline(context.Background(), sl.deadline)
	s.cur.Store(sl)
	return sl
}

// headerValues is room for the header values of a request copy, so that a
// typical request needs no allocation for them.
type headerValues struct {
	room [4]string
	vals []string // room, or a larger array once room is full
}

// header returns a new header map holding copies of src's values and,
// unless src has one, the User-Agent. src is not modified. creds, if not
// nil, replace same-named values of src.
func (hv *headerValues) header(src, creds http.Header, ua []string) http.Header {
	h := make(http.Header, len(src)+len(creds)+1)
	for k, vv := range src {
		if _, ok := creds[k]; !ok {
			hv.put(h, k, vv)
		}
	}
	if _, ok := src["User-Agent"]; !ok {
		hv.put(h, "User-Agent", ua)
	}
	hv.fill(h, creds)
	return h
}

// fill sets creds in h, replacing values of the same names.
func (hv *headerValues) fill(h, creds http.Header) {
	for k, vv := range creds {
		hv.put(h, http.CanonicalHeaderKey(k), vv)
	}
}

// put sets h[key] to a copy of vv. Sub-slices already handed out stay
// valid when vals outgrows room.
func (hv *headerValues) put(h http.Header, key string, vv []string) {
	if hv.vals == nil {
		hv.vals = hv.room[:0:len(hv.room)]
	}
	hv.vals = append(hv.vals, vv...)
	n := len(hv.vals)
	h[key] = hv.vals[n-len(vv) : n : n]
}

// releaseBody releases the attempt's derived context when the final
// response's body is closed.
type releaseBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

// Close closes the body and releases the attempt's context.
func (b *releaseBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}
