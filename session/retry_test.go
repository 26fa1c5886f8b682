package session

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// scripted answers the statuses in script, then 200 "ok", and records
// every request.
func scripted(t *testing.T, script ...int) (*httptest.Server, *seen) {
	sn := &seen{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := len(sn.all())
		sn.record(r)
		if i < len(script) {
			w.WriteHeader(script[i])
			io.WriteString(w, "temporarily unavailable")
			return
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return srv, sn
}

func fastRetries(hub string) Config {
	return Config{HubURL: hub, RetryWaitMin: time.Millisecond, RetryWaitMax: 2 * time.Millisecond}
}

func TestRetries(t *testing.T) {
	const payload = `{"a":1,"b":"two"}`
	type mark int
	const (
		none mark = iota
		retryable
		idemKey
	)
	tests := []struct {
		name         string
		method       string
		body         string
		rewindable   bool
		mark         mark
		script       []int
		wantAttempts int
		wantStatus   int // 0: want a *StatusError
		wantErrCode  int
	}{
		{name: "GET 503", method: "GET", script: []int{503}, wantAttempts: 2, wantStatus: 200},
		{name: "GET 408", method: "GET", script: []int{408}, wantAttempts: 2, wantStatus: 200},
		{name: "GET 429", method: "GET", script: []int{429}, wantAttempts: 2, wantStatus: 200},
		{name: "GET 500", method: "GET", script: []int{500}, wantAttempts: 2, wantStatus: 200},
		{name: "GET 502", method: "GET", script: []int{502}, wantAttempts: 2, wantStatus: 200},
		{name: "GET 504", method: "GET", script: []int{504}, wantAttempts: 2, wantStatus: 200},
		{name: "GET 501 is not retried", method: "GET", script: []int{501}, wantAttempts: 1, wantStatus: 501},
		{name: "GET 404 is not retried", method: "GET", script: []int{404}, wantAttempts: 1, wantStatus: 404},
		{name: "HEAD 503 503", method: "HEAD", script: []int{503, 503}, wantAttempts: 3, wantStatus: 200},
		{name: "DELETE 500", method: "DELETE", script: []int{500}, wantAttempts: 2, wantStatus: 200},
		{name: "OPTIONS 502", method: "OPTIONS", script: []int{502}, wantAttempts: 2, wantStatus: 200},
		{name: "PUT body replayed", method: "PUT", body: payload, rewindable: true, script: []int{503, 502}, wantAttempts: 3, wantStatus: 200},
		{name: "POST not retried", method: "POST", body: payload, rewindable: true, script: []int{503}, wantAttempts: 1, wantErrCode: 503},
		{name: "PATCH not retried", method: "PATCH", body: payload, rewindable: true, script: []int{500}, wantAttempts: 1, wantErrCode: 500},
		{name: "POST marked Retryable", method: "POST", body: payload, rewindable: true, mark: retryable, script: []int{503}, wantAttempts: 2, wantStatus: 200},
		{name: "POST with Idempotency-Key", method: "POST", body: payload, rewindable: true, mark: idemKey, script: []int{429}, wantAttempts: 2, wantStatus: 200},
		{name: "PUT body that cannot be rewound", method: "PUT", body: payload, script: []int{503}, wantAttempts: 1, wantErrCode: 503},
		{name: "retries run out", method: "GET", script: []int{503, 503, 503, 503, 503}, wantAttempts: 4, wantErrCode: 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, sn := scripted(t, tt.script...)
			tok := secret("tok")
			s := newSession(t, &staticHandler{hub: http.Header{"Authorization": {"Bearer " + tok}}}, fastRetries(srv.URL))
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
				if !tt.rewindable {
					body = io.MultiReader(body)
				}
			}
			req := newReq(t, tt.method, srv.URL+"/things", body)
			switch tt.mark {
			case retryable:
				req = Retryable(req)
			case idemKey:
				req.Header.Set("Idempotency-Key", "k-1")
			}
			resp, _, err := do(t, s, req)
			reqs := sn.all()
			if len(reqs) != tt.wantAttempts {
				t.Errorf("server saw %d attempts, want %d", len(reqs), tt.wantAttempts)
			}
			for i, r := range reqs {
				if r.body != tt.body {
					t.Errorf("attempt %d: body %q, want %q", i+1, r.body, tt.body)
				}
				assertCreds(t, r.header, map[string]string{"Authorization": "Bearer " + tok})
			}
			if tt.wantStatus != 0 {
				if err != nil {
					t.Fatalf("Do: %v", err)
				}
				if resp.StatusCode != tt.wantStatus {
					t.Fatalf("status %d, want %d", resp.StatusCode, tt.wantStatus)
				}
				return
			}
			var se *StatusError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v, want a *StatusError", err)
			}
			if se.StatusCode != tt.wantErrCode || se.Attempts != tt.wantAttempts || se.Method != tt.method || se.Service != "hub" {
				t.Errorf("StatusError = %+v", se)
			}
			if se.Excerpt != "temporarily unavailable" {
				t.Errorf("Excerpt = %q", se.Excerpt)
			}
		})
	}
}

// TestHeadersRecomputedPerAttempt: a token refreshed between attempts is
// the one the retry carries.
func TestHeadersRecomputedPerAttempt(t *testing.T) {
	srv, sn := scripted(t, 503, 503)
	tok := secret("tok")
	n := 0
	h := &rotatingHandler{next: func() string { n++; return "Bearer " + tok + "-" + string(rune('0'+n)) }}
	s := newSession(t, h, fastRetries(srv.URL))
	if _, _, err := do(t, s, newReq(t, "GET", srv.URL, nil)); err != nil {
		t.Fatal(err)
	}
	reqs := sn.all()
	if len(reqs) != 3 {
		t.Fatalf("%d attempts", len(reqs))
	}
	for i, r := range reqs {
		want := "Bearer " + tok + "-" + string(rune('1'+i))
		if got := r.header.Get("Authorization"); got != want {
			t.Errorf("attempt %d sent %q", i+1, redactForTest(got))
		}
	}
}

// TestNetworkErrorRetried: a connection dropped without an answer is retried.
func TestNetworkErrorRetried(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	s := newSession(t, &staticHandler{hub: http.Header{}}, fastRetries(srv.URL))
	resp, body, err := do(t, s, newReq(t, "GET", srv.URL, nil))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || body != "ok" || n.Load() != 2 {
		t.Fatalf("got %d %q after %d attempts", resp.StatusCode, body, n.Load())
	}
}

// TestNetworkErrorRedacted: the final network error names the request
// without its secrets.
func TestNetworkErrorRedacted(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	pw, tok := secret("pw"), secret("tok")
	s := newSession(t, &staticHandler{hub: http.Header{"Authorization": {"Bearer " + tok}}}, fastRetries("http://"+addr))
	_, _, err = do(t, s, newReq(t, "GET", "http://alice:"+pw+"@"+addr+"/x?access_token="+tok+"&page=2", nil))
	var re *RequestError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v, want *RequestError", err)
	}
	if re.Attempts != 4 || re.Service != "hub" || !strings.Contains(re.URL, "access_token=REDACTED&page=2") {
		t.Errorf("RequestError = %+v", re)
	}
	var ne net.Error
	if !errors.As(err, &ne) {
		t.Errorf("err %v does not carry the net.Error", err)
	}
}

func TestRetryAfterCapped(t *testing.T) {
	srv := httptest.NewServer(nil)
	var n atomic.Int64
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.Header().Set("Retry-After", "3600")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	})
	defer srv.Close()
	var mu sync.Mutex
	var waits []time.Duration
	cfg := Config{HubURL: srv.URL, RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond,
		Backoff: func(min, max time.Duration, attempt int, resp *http.Response) time.Duration {
			d := DefaultBackoff(min, max, attempt, resp)
			mu.Lock()
			waits = append(waits, d)
			mu.Unlock()
			return d
		}}
	var lines lineBuf
	cfg.Logger = capture(&lines)
	s := newSession(t, &staticHandler{hub: http.Header{}}, cfg)
	resp, _, err := do(t, s, newReq(t, "GET", srv.URL, nil))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("Do: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(waits) != 1 || waits[0] != 5*time.Millisecond {
		t.Errorf("waits = %v, want [5ms] (Retry-After 3600 s capped at RetryWaitMax)", waits)
	}
	if !strings.Contains(lines.String(), "wait=5ms") {
		t.Errorf("the wait is not logged:\n%s", lines.String())
	}
}

func TestDefaultBackoff(t *testing.T) {
	date := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	resp := func(h ...string) *http.Response {
		r := &http.Response{StatusCode: 503, Header: http.Header{}}
		for i := 0; i+1 < len(h); i += 2 {
			r.Header.Set(h[i], h[i+1])
		}
		return r
	}
	tests := []struct {
		name     string
		min, max time.Duration
		attempt  int
		resp     *http.Response
		lo, hi   time.Duration
	}{
		{"Retry-After seconds", time.Second, time.Minute, 0, resp("Retry-After", "2"), 2 * time.Second, 2 * time.Second},
		{"Retry-After capped", time.Second, 5 * time.Second, 0, resp("Retry-After", "120"), 5 * time.Second, 5 * time.Second},
		{"Retry-After zero", time.Second, 5 * time.Second, 2, resp("Retry-After", "0"), 0, 0},
		{"Retry-After date against Date", time.Second, time.Minute, 0,
			resp("Date", date.Format(http.TimeFormat), "Retry-After", date.Add(30*time.Second).Format(http.TimeFormat)), 30 * time.Second, 30 * time.Second},
		{"Retry-After date in the past", time.Second, time.Minute, 0,
			resp("Date", date.Format(http.TimeFormat), "Retry-After", date.Add(-time.Hour).Format(http.TimeFormat)), 0, 0},
		{"Retry-After garbage falls back", 100 * time.Millisecond, time.Minute, 0, resp("Retry-After", "soon"), 50 * time.Millisecond, 100 * time.Millisecond},
		{"Retry-After negative falls back", 100 * time.Millisecond, time.Minute, 0, resp("Retry-After", "-5"), 50 * time.Millisecond, 100 * time.Millisecond},
		{"first backoff", 100 * time.Millisecond, time.Minute, 0, nil, 50 * time.Millisecond, 100 * time.Millisecond},
		{"exponential", 100 * time.Millisecond, time.Minute, 3, nil, 400 * time.Millisecond, 800 * time.Millisecond},
		{"capped", 100 * time.Millisecond, time.Second, 20, nil, 500 * time.Millisecond, time.Second},
		{"huge attempt", time.Second, 30 * time.Second, 1000, resp(), 15 * time.Second, 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 50 { // jitter: every draw must be in range
				d := DefaultBackoff(tt.min, tt.max, tt.attempt, tt.resp)
				if d < tt.lo || d > tt.hi {
					t.Fatalf("DefaultBackoff = %v, want in [%v, %v]", d, tt.lo, tt.hi)
				}
			}
		})
	}
}

// TestCancelDuringBackoff: the caller's ctx ends an hour-long backoff at once.
func TestCancelDuringBackoff(t *testing.T) {
	srv, sn := scripted(t, 503, 503, 503, 503)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	cfg := Config{HubURL: srv.URL, RetryWaitMin: time.Hour, RetryWaitMax: time.Hour,
		Backoff: func(min, max time.Duration, attempt int, resp *http.Response) time.Duration {
			cancel() // the caller gives up while the session waits
			return DefaultBackoff(min, max, attempt, resp)
		}}
	s := newSession(t, &staticHandler{hub: http.Header{}}, cfg)
	errc := make(chan error, 1)
	go func() {
		_, _, err := do(t, s, newReq(t, "GET", srv.URL, nil).WithContext(ctx))
		errc <- err
	}()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second): // a watchdog, far below the 1 h backoff
		t.Fatal("Do did not return when its ctx was cancelled during the backoff")
	}
	if n := sn.count(); n != 1 {
		t.Errorf("server saw %d attempts, want 1", n)
	}
}

// TestCancelNeverAnswering: a server that never answers is left when the
// caller's ctx ends, without retries.
func TestCancelNeverAnswering(t *testing.T) {
	arrived := make(chan struct{}, 8)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	s := newSession(t, &staticHandler{hub: http.Header{}}, fastRetries(srv.URL))
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, _, err := do(t, s, newReq(t, "GET", srv.URL, nil).WithContext(ctx))
		errc <- err
	}()
	<-arrived
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Do did not return after cancel")
	}
	if len(arrived) != 0 {
		t.Errorf("%d more attempts after cancel", len(arrived))
	}
}

func TestDisableRetries(t *testing.T) {
	srv, sn := scripted(t, 503)
	cfg := fastRetries(srv.URL)
	cfg.DisableRetries = true
	s := newSession(t, &staticHandler{hub: http.Header{}}, cfg)
	_, _, err := do(t, s, newReq(t, "GET", srv.URL, nil))
	var se *StatusError
	if !errors.As(err, &se) || se.Attempts != 1 || sn.count() != 1 {
		t.Fatalf("err = %v after %d attempts, want a StatusError after 1", err, sn.count())
	}
}

// TestRetryRepeatsTheRedirectChain: an attempt is the whole redirect
// chain, so a retry after the redirect's target failed starts again at the
// first URL, and credentials are decided for every hop (the target, outside
// the hub's path, gets none).
func TestRetryRepeatsTheRedirectChain(t *testing.T) {
	var start, target atomic.Int32
	var targetAuth atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/start":
			start.Add(1)
			http.Redirect(w, r, "/elsewhere/target", http.StatusFound)
		case "/elsewhere/target":
			targetAuth.Store(r.Header.Get("Authorization"))
			if target.Add(1) == 1 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			io.WriteString(w, "ok")
		}
	}))
	defer srv.Close()
	s := newSession(t, &staticHandler{hub: http.Header{"Authorization": {"Bearer hub-token"}}}, fastRetries(srv.URL+"/api"))
	resp, body, err := do(t, s, newReq(t, "GET", srv.URL+"/api/start", nil))
	if err != nil || resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("got %v %q", err, body)
	}
	if a, b := start.Load(), target.Load(); a != 2 || b != 2 {
		t.Errorf("start asked %d times, target %d; want 2 and 2 (the retry repeats the chain)", a, b)
	}
	if v := targetAuth.Load(); v != "" {
		t.Errorf("the redirect target outside the hub's path got Authorization %q", v)
	}
}
