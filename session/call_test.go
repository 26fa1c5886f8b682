package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

type ctxKey struct{}

// valueTransport records the value of ctxKey in the context of every
// request it sends.
type valueTransport struct {
	base http.RoundTripper
	seen atomic.Value
}

func (t *valueTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if v, ok := req.Context().Value(ctxKey{}).(string); ok {
		t.seen.Store(v)
	}
	return t.base.RoundTrip(req)
}

// TestAttemptTimeoutPerCallerContext: whatever the caller's context — never
// cancelled, carrying values, cancellable, with a distant deadline — a hung
// attempt is abandoned after AttemptTimeout and the retry succeeds, with
// the caller's values visible to the transport on every attempt. A
// caller's deadline sooner than AttemptTimeout wins and is not retried.
func TestAttemptTimeoutPerCallerContext(t *testing.T) {
	// Long enough for a healthy attempt on a loaded machine: the hung
	// attempt takes it, whatever the load.
	const attemptTimeout = 500 * time.Millisecond
	tests := []struct {
		name      string
		ctx       func(t *testing.T) context.Context
		wantErr   error // nil: the retry succeeds
		wantTries int64
	}{
		{"background", func(*testing.T) context.Context { return context.Background() }, nil, 2},
		{"values", func(*testing.T) context.Context { return context.WithValue(context.Background(), ctxKey{}, "v") }, nil, 2},
		{"cancellable", func(t *testing.T) context.Context {
			ctx, cancel := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "v"))
			t.Cleanup(cancel)
			return ctx
		}, nil, 2},
		{"distant deadline", func(t *testing.T) context.Context {
			ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
			t.Cleanup(cancel)
			return ctx
		}, nil, 2},
		{"sooner deadline", func(t *testing.T) context.Context {
			ctx, cancel := context.WithTimeout(context.Background(), attemptTimeout/2)
			t.Cleanup(cancel)
			return ctx
		}, context.DeadlineExceeded, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if n.Add(1) == 1 {
					<-r.Context().Done() // hang until the client gives up on this attempt
					return
				}
				io.WriteString(w, "ok")
			}))
			defer srv.Close()
			vt := &valueTransport{base: http.DefaultTransport}
			cfg := fastRetries(srv.URL)
			cfg.AttemptTimeout = attemptTimeout
			cfg.Transport = vt
			s := newSession(t, &staticHandler{hub: http.Header{}}, cfg)
			ctx := tt.ctx(t)
			resp, body, err := do(t, s, newReq(t, "GET", srv.URL, nil).WithContext(ctx))
			switch tries := n.Load(); {
			case tt.wantErr != nil && tries > tt.wantTries:
				// The caller's deadline may end the attempt before it
				// reaches the server on a loaded machine: at most.
				t.Errorf("%d attempts, want at most %d", tries, tt.wantTries)
			case tt.wantErr == nil && tries != tt.wantTries:
				t.Errorf("%d attempts, want %d", tries, tt.wantTries)
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || resp.StatusCode != 200 || body != "ok" {
				t.Fatalf("got %v %q", err, body)
			}
			if want := ctx.Value(ctxKey{}); want != nil && vt.seen.Load() != want {
				t.Errorf("the transport saw value %v, want %v", vt.seen.Load(), want)
			}
		})
	}
}

// TestAttemptTimeoutCoversBody: the attempt lasts until the response body
// is closed, so a body that stalls is cut after AttemptTimeout, whatever
// the caller's context.
func TestAttemptTimeoutCoversBody(t *testing.T) {
	for _, cancellable := range []bool{false, true} {
		t.Run(map[bool]string{false: "background", true: "cancellable"}[cancellable], func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "partial")
				w.(http.Flusher).Flush()
				<-r.Context().Done()
			}))
			defer srv.Close()
			cfg := fastRetries(srv.URL)
			cfg.AttemptTimeout = 500 * time.Millisecond // time for the headers under load; the body then stalls
			s := newSession(t, &staticHandler{hub: http.Header{}}, cfg)
			ctx := context.Background()
			if cancellable {
				c, cancel := context.WithCancel(ctx)
				defer cancel()
				ctx = c
			}
			resp, err := s.Do(newReq(t, "GET", srv.URL, nil).WithContext(ctx))
			if err != nil {
				t.Fatal(noteErr(err))
			}
			defer resp.Body.Close()
			_, err = io.ReadAll(resp.Body)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("reading a stalled body: err = %v, want context.DeadlineExceeded", err)
			}
		})
	}
}

// ctxTransport records the context of the last request it sent.
type ctxTransport struct {
	base http.RoundTripper
	last atomic.Value
}

func (t *ctxTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.last.Store(req.Context())
	return t.base.RoundTrip(req)
}

// TestAttemptContextReleased: an attempt with its own deadline releases it
// (and its timer) when Do fails, or when the response body is closed.
func TestAttemptContextReleased(t *testing.T) {
	srv, _ := scripted(t, 503)
	ct := &ctxTransport{base: http.DefaultTransport}
	cfg := fastRetries(srv.URL)
	cfg.DisableRetries = true
	cfg.Transport = ct
	s := newSession(t, &staticHandler{hub: http.Header{}}, cfg)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	derived := func() *attempt {
		t.Helper()
		a, ok := ct.last.Load().(*attempt)
		if !ok || a.cancel == nil {
			t.Fatalf("the request's context is %T without a deadline of its own", ct.last.Load())
		}
		return a
	}

	_, _, err := do(t, s, newReq(t, "GET", srv.URL, nil).WithContext(ctx))
	var se *StatusError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v, want a StatusError", err)
	}
	if err := derived().ctx.Err(); !errors.Is(err, context.Canceled) {
		t.Fatalf("after a failed Do the attempt's context err = %v, want context.Canceled", err)
	}

	resp, err := s.Do(newReq(t, "GET", srv.URL, nil).WithContext(ctx))
	if err != nil {
		t.Fatal(noteErr(err))
	}
	a := derived()
	if err := a.ctx.Err(); err != nil {
		t.Fatalf("the attempt's context ended before the body was closed: %v", err)
	}
	resp.Body.Close()
	if err := a.ctx.Err(); !errors.Is(err, context.Canceled) {
		t.Fatalf("after Close the attempt's context err = %v, want context.Canceled", err)
	}
	if ctx.Err() != nil {
		t.Fatal("releasing the attempt cancelled the caller's context")
	}
}

// TestSharedAttemptDeadline: for a caller's context that is never
// cancelled, attempts share one timer context per slot of time; contexts
// derived from an attempt (as net/http derives one per request) are
// cancelled with the slot, without a goroutine each.
func TestSharedAttemptDeadline(t *testing.T) {
	const timeout = time.Hour
	s := newSession(t, &staticHandler{hub: http.Header{}}, Config{HubURL: "https://hub.example.com", AttemptTimeout: timeout})
	before := time.Now()
	c1 := s.newCall(newReq(t, "GET", "https://hub.example.com/x", nil))
	c2 := s.newCall(newReq(t, "GET", "https://hub.example.com/y", nil))
	a := &c1.first
	if a.slot == nil {
		t.Fatal("an attempt of a never-cancelled context has no shared slot")
	}
	if c2.first.slot != a.slot {
		t.Error("two attempts started together do not share their slot")
	}
	dl, ok := a.Deadline()
	if !ok || dl.Before(before.Add(timeout)) || dl.After(time.Now().Add(timeout+timeout/64)) {
		t.Errorf("deadline %v, want between %v and a 64th of the timeout later", dl, before.Add(timeout))
	}

	g := runtime.NumGoroutine()
	var children []context.Context
	for range 100 {
		ctx, cancel := context.WithCancelCause(a)
		defer cancel(nil)
		children = append(children, ctx)
	}
	if d := runtime.NumGoroutine() - g; d > 0 {
		t.Errorf("deriving 100 contexts from an attempt started %d goroutines", d)
	}
	a.slot.cancel() // what the slot's timer does at its deadline
	for _, ctx := range children {
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("a derived context was not cancelled with its slot")
		}
	}
	if !errors.Is(a.Err(), context.Canceled) {
		t.Errorf("attempt err = %v after its slot ended", a.Err())
	}
}

// attemptRecorder fails the first attempt by waiting for its context to
// end (the attempt timeout), records that context, and answers later
// attempts at once.
type attemptRecorder struct {
	first chan context.Context // receives the first attempt's context
	n     atomic.Int32
}

func (r *attemptRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if r.n.Add(1) == 1 {
		ctx := req.Context()
		r.first <- ctx
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return &http.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody, Request: req}, nil
}

// TestAttemptContextKeepsTheContract: the context an attempt hands the
// transport is a context.Context as its documentation says, after the
// attempt too: Done returns the same channel on every call, and once it
// is closed Err is not nil. (It used to switch to the caller's context when
// a retry began: Done became nil and Err nil after the attempt timed out.)
func TestAttemptContextKeepsTheContract(t *testing.T) {
	tests := []struct {
		name string
		ctx  func(t *testing.T) context.Context
	}{
		{"background", func(*testing.T) context.Context { return context.Background() }},
		{"cancellable", func(t *testing.T) context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			return ctx
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &attemptRecorder{first: make(chan context.Context, 1)}
			s := newSession(t, &staticHandler{hub: http.Header{}}, Config{HubURL: "https://hub.example.com",
				Transport: rec, AttemptTimeout: 20 * time.Millisecond, RetryWaitMin: time.Millisecond, RetryWaitMax: time.Millisecond})
			resp, err := s.Do(newReq(t, "GET", "https://hub.example.com/x", nil).WithContext(tt.ctx(t)))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			ctx := <-rec.first
			done := ctx.Done()
			select {
			case <-done:
			default:
				t.Fatal("the first attempt's Done channel is not closed after it timed out")
			}
			if ctx.Done() != done {
				t.Error("Done returned another channel after the attempt ended")
			}
			if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
				t.Errorf("Err = %v after Done was closed, want context.DeadlineExceeded", ctx.Err())
			}
			if dl, ok := ctx.Deadline(); !ok || dl.IsZero() {
				t.Errorf("Deadline = %v, %v after the attempt ended, want the attempt's", dl, ok)
			}
		})
	}
}

// waitingHandler waits for a token until the caller's ctx ends and then
// says why, as auth.Engine does.
type waitingHandler struct{ staticHandler }

func (h *waitingHandler) HubRequestHeaders(ctx context.Context) (http.Header, error) {
	<-ctx.Done()
	return nil, fmt.Errorf("auth: gave up waiting for a token: %w; the last attempt failed: token endpoint: 503 Service Unavailable", ctx.Err())
}

// TestCallerDeadlineKeepsTheCause: when the caller's deadline ends a wait
// for credentials, the error still says what was waited for and why it
// took so long, besides matching context.DeadlineExceeded.
func TestCallerDeadlineKeepsTheCause(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	s := newSession(t, &waitingHandler{}, fastRetries(srv.URL))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, _, err := do(t, s, newReq(t, "GET", srv.URL+"/api/me", nil).WithContext(ctx))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
	if !strings.Contains(err.Error(), "the last attempt failed: token endpoint: 503") {
		t.Errorf("err = %q, want it to say why no token came", err)
	}
}
