package jwks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/internal/fakeclock"
)

func TestNewKeySetConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no URL", Config{}},
		{"relative URL", Config{URL: "/jwks"}},
		{"other scheme", Config{URL: "ftp://example.com/jwks"}},
		{"negative TTL", Config{URL: "https://example.com/jwks", TTL: -time.Second}},
		{"negative MinRefresh", Config{URL: "https://example.com/jwks", MinRefresh: -time.Second}},
		{"negative UnknownKidRefresh", Config{URL: "https://example.com/jwks", UnknownKidRefresh: -time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ks, err := NewKeySet(tc.cfg)
			if !errors.Is(err, auth.ErrInvalidConfig) || ks != nil {
				t.Fatalf("NewKeySet = %v, %v; want a configuration error", ks, err)
			}
		})
	}
}

// NewKeySet and NewVerifier do no I/O and start no goroutine.
func TestNewKeySetIsInert(t *testing.T) {
	f := newFakeJWKS(t, jwkSet(t, key("A")))
	base := runtime.NumGoroutine()
	ks, err := NewKeySet(Config{URL: f.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewVerifier(VerifierConfig{KeySet: ks}); err != nil {
		t.Fatal(err)
	}
	goroutinesBackTo(t, base)
	if n := f.n.Load(); n != 0 {
		t.Errorf("the constructors sent %d requests, want 0", n)
	}
	if err := ks.Close(); err != nil {
		t.Fatal(err)
	}
	goroutinesBackTo(t, base)
}

// Concurrent callers on a cold cache share one fetch.
func TestColdCacheOneFetch(t *testing.T) {
	f := newFakeJWKS(t, jwkSet(t, key("A")))
	release := f.hold()
	_, v := newRemote(t, Config{URL: f.srv.URL})
	raw := key("A").sign(t)

	const callers = 50
	errs := make(chan error, callers)
	var started sync.WaitGroup
	for range callers {
		started.Add(1)
		go func() {
			started.Done()
			errs <- parse(t.Context(), v, raw)
		}()
	}
	started.Wait()
	f.waitHit(t)
	release()
	for range callers {
		select {
		case err := <-errs:
			if err != nil {
				t.Errorf("Parse: %v", err)
			}
		case <-time.After(waitLimit):
			t.Fatalf("callers still waiting after %v", waitLimit)
		}
	}
	if n := f.n.Load(); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

// A JWK Set that never answers: each caller returns when its own ctx ends,
// without cancelling the fetch for the others; Close ends the fetch.
func TestNeverAnsweringServer(t *testing.T) {
	var requests atomic.Int64
	cancelled := make(chan struct{}, 10)
	ended := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		select {
		case <-r.Context().Done():
			cancelled <- struct{}{}
		case <-ended:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(ended) })
	base := runtime.NumGoroutine()

	// The clock moves past MinRefresh between callers: the second must
	// still join the fetch in flight rather than start another.
	clk := fakeclock.New(time.Time{})
	ks, err := NewKeySet(Config{URL: srv.URL, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close() })
	v, err := NewVerifier(VerifierConfig{KeySet: ks})
	if err != nil {
		t.Fatal(err)
	}
	raw := key("A").sign(t)

	for _, name := range []string{"first caller", "second caller"} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
			defer cancel()
			start := time.Now()
			err := parse(ctx, v, raw)
			if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrKeysUnavailable) {
				t.Fatalf("Parse = %v; want ErrKeysUnavailable wrapping context.DeadlineExceeded", err)
			}
			if d := time.Since(start); d > waitLimit {
				t.Errorf("Parse returned after %v; its ctx allowed 200ms", d)
			}
			clk.Advance(time.Hour)
		})
	}
	select {
	case <-cancelled:
		t.Fatal("a caller's ctx cancelled the shared fetch")
	default:
	}

	// On a loaded machine the shared fetch may reach the server only after
	// both callers gave up: wait for it, then count.
	for deadline := time.Now().Add(waitLimit); requests.Load() == 0 && time.Now().Before(deadline); {
		runtime.Gosched()
	}
	if n := requests.Load(); n != 1 {
		t.Errorf("%d requests, want 1 shared fetch", n)
	}

	waiter := make(chan error, 1)
	go func() { waiter <- parse(context.Background(), v, raw) }()
	if err := ks.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-waiter:
		if !errors.Is(err, errClosed) {
			t.Errorf("a caller waiting during Close got %v, want ErrClosed", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("a caller without deadline still waits after Close")
	}
	select {
	case <-cancelled:
	case <-time.After(waitLimit):
		t.Fatal("the server never saw the fetch cancelled after Close")
	}
	goroutinesBackTo(t, base)
}

// A provider signs with a new key the moment it adds it to its set: a token
// signed with it verifies on the next call, even right after a fetch,
// without moving the clock (issue 20, item 8).
func TestRotatedKeyVerifiesAtOnce(t *testing.T) {
	clk := fakeclock.New(time.Time{})
	f := newFakeJWKS(t, jwkSet(t, key("A")))
	_, v := newRemote(t, Config{URL: f.srv.URL, Clock: clk})
	ctx := t.Context()

	if err := parse(ctx, v, key("A").sign(t)); err != nil {
		t.Fatal(err)
	}
	f.serve(http.StatusOK, jwkSet(t, key("A"), key("B")))
	if err := parse(ctx, v, key("B").sign(t)); err != nil {
		t.Fatalf("B, added right after the first fetch: %v", err)
	}
	if n := f.n.Load(); n != 2 {
		t.Fatalf("%d requests, want 2 (the first fetch and one for B)", n)
	}
	for _, name := range []string{"A", "B"} {
		if err := parse(ctx, v, key(name).sign(t)); err != nil {
			t.Fatalf("%s from the new set: %v", name, err)
		}
	}
	if n := f.n.Load(); n != 2 {
		t.Errorf("%d requests, want 2 (known kids fetch nothing)", n)
	}
}

// Unknown kids refetch at most once per UnknownKidRefresh (zero: 10 s): a
// flood of tokens with made-up kids costs one fetch per window, and a kid
// the limit refuses fails at once, without waiting.
func TestUnknownKidRateLimit(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  time.Duration
		gap  time.Duration
	}{
		{"default", 0, 10 * time.Second},
		{"configured", time.Minute, time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := fakeclock.New(time.Time{})
			f := newFakeJWKS(t, jwkSet(t, key("A")))
			_, v := newRemote(t, Config{URL: f.srv.URL, Clock: clk, UnknownKidRefresh: tc.cfg})
			ctx := t.Context()
			if err := parse(ctx, v, key("A").sign(t)); err != nil {
				t.Fatal(err)
			}
			requests := func(want int64, when string) {
				t.Helper()
				if n := f.n.Load(); n != want {
					t.Fatalf("%s: %d requests, want %d", when, n, want)
				}
			}
			flood := func(round int) {
				t.Helper()
				const callers = 100
				errs := make(chan error, callers)
				for i := range callers {
					raw := key("A").withKid(fmt.Sprintf("forged-%d-%d", round, i)).sign(t)
					go func() { errs <- parse(ctx, v, raw) }()
				}
				for range callers {
					if err := <-errs; !errors.Is(err, ErrUnknownKey) {
						t.Errorf("made-up kid: %v, want ErrUnknownKey", err)
					}
				}
			}

			flood(1)
			requests(2, "after a flood right after the first fetch")

			// Refused at once: a caller that waited would see its ctx
			// cancelled and get ErrKeysUnavailable.
			cancelled, cancel := context.WithCancel(ctx)
			cancel()
			if err := parse(cancelled, v, key("A").withKid("forged").sign(t)); !errors.Is(err, ErrUnknownKey) {
				t.Fatalf("made-up kid refused by the limit: %v, want ErrUnknownKey at once", err)
			}

			f.serve(http.StatusOK, jwkSet(t, key("A"), key("B")))
			clk.Advance(tc.gap - time.Nanosecond)
			flood(2)
			if err := parse(ctx, v, key("B").sign(t)); !errors.Is(err, ErrUnknownKey) {
				t.Fatalf("B within the window: %v, want ErrUnknownKey", err)
			}
			requests(2, "within the window")

			clk.Advance(time.Nanosecond)
			if err := parse(ctx, v, key("B").sign(t)); err != nil {
				t.Fatalf("B once the window is over: %v", err)
			}
			flood(3)
			requests(3, "after B and a flood in the next window")
			if err := parse(ctx, v, key("A").sign(t)); err != nil {
				t.Errorf("A after the floods: %v", err)
			}
			requests(3, "at the end")
		})
	}
}

// A failed unknown-kid refetch (HTTP 500) keeps the known keys: A still
// verifies, B is ErrKeysUnavailable, the next refetch waits for the window,
// and B verifies once the endpoint recovered.
func TestUnknownKidRefetchFailureKeepsKeys(t *testing.T) {
	clk := fakeclock.New(time.Time{})
	f := newFakeJWKS(t, jwkSet(t, key("A")))
	_, v := newRemote(t, Config{URL: f.srv.URL, Clock: clk})
	ctx := t.Context()
	if err := parse(ctx, v, key("A").sign(t)); err != nil {
		t.Fatal(err)
	}

	f.serve(http.StatusInternalServerError, []byte(secretMarker))
	err := parse(ctx, v, key("B").sign(t))
	if !errors.Is(err, ErrKeysUnavailable) {
		t.Fatalf("B with a failing endpoint: %v, want ErrKeysUnavailable", err)
	}
	if re, ok := errors.AsType[*auth.ResponseError](err); !ok || re.StatusCode != http.StatusInternalServerError {
		t.Errorf("error %v does not carry the HTTP status 500", err)
	}
	if strings.Contains(err.Error(), secretMarker) {
		t.Errorf("error quotes the body: %v", err)
	}
	if err := parse(ctx, v, key("A").sign(t)); err != nil {
		t.Fatalf("A after the failed refetch: %v", err)
	}
	if n := f.n.Load(); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}

	f.serve(http.StatusOK, jwkSet(t, key("A"), key("B")))
	clk.Advance(10*time.Second - time.Nanosecond)
	if err := parse(ctx, v, key("B").sign(t)); !errors.Is(err, ErrKeysUnavailable) {
		t.Fatalf("B within the window after a failure: %v, want ErrKeysUnavailable", err)
	}
	if n := f.n.Load(); n != 2 {
		t.Fatalf("%d requests within the window, want 2", n)
	}
	clk.Advance(time.Nanosecond)
	for _, name := range []string{"B", "A"} {
		if err := parse(ctx, v, key(name).sign(t)); err != nil {
			t.Fatalf("%s once the endpoint recovered: %v", name, err)
		}
	}
	if n := f.n.Load(); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
}

// Concurrent callers with a freshly rotated kid share one fetch: all of
// them are waiting for it before it answers, and all verify.
func TestRotatedKeyOneSharedFetch(t *testing.T) {
	clk := fakeclock.New(time.Time{})
	f := newFakeJWKS(t, jwkSet(t, key("A")))
	_, v := newRemote(t, Config{URL: f.srv.URL, Clock: clk})
	if err := parse(t.Context(), v, key("A").sign(t)); err != nil {
		t.Fatal(err)
	}
	f.waitHit(t)

	f.serve(http.StatusOK, jwkSet(t, key("A"), key("B")))
	release := f.hold()
	defer release()
	raw := key("B").sign(t)
	const callers = 20
	errs := make(chan error, callers)
	for range callers {
		ctx := newWaitingCtx(t.Context())
		go func() { errs <- parse(ctx, v, raw) }()
		ctx.waitWaiting(t)
	}
	f.waitHit(t)
	release()
	for range callers {
		select {
		case err := <-errs:
			if err != nil {
				t.Errorf("B: %v", err)
			}
		case <-time.After(waitLimit):
			t.Fatalf("callers still waiting after %v", waitLimit)
		}
	}
	if n := f.n.Load(); n != 2 {
		t.Errorf("%d requests, want 2 (one shared fetch for B)", n)
	}
}

// A fetch already in flight when a token with a new kid comes may predate
// the key: if it ends without the kid, the caller starts one more fetch
// (the first for an unknown kid) and verifies.
func TestKidMissingFromFetchInFlight(t *testing.T) {
	clk := fakeclock.New(time.Time{})
	f := newFakeJWKS(t, jwkSet(t, key("A")))
	_, v := newRemote(t, Config{URL: f.srv.URL, Clock: clk, TTL: time.Hour})
	ctx := t.Context()
	if err := parse(ctx, v, key("A").sign(t)); err != nil {
		t.Fatal(err)
	}
	f.waitHit(t)

	release := f.hold()
	defer release()
	clk.Advance(time.Hour)
	if err := parse(ctx, v, key("A").sign(t)); err != nil { // starts a TTL refetch
		t.Fatal(err)
	}
	f.waitHit(t) // the refetch will answer the set without B
	f.serve(http.StatusOK, jwkSet(t, key("A"), key("B")))
	raw := key("B").sign(t)
	wctx := newWaitingCtx(ctx)
	errc := make(chan error, 1)
	go func() { errc <- parse(wctx, v, raw) }()
	wctx.waitWaiting(t)
	release()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("B after a fetch in flight that predates it: %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("B still waiting")
	}
	if n := f.n.Load(); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
}

// After the TTL, the next use refetches; the old set serves known kids
// meanwhile.
func TestTTLRefetch(t *testing.T) {
	clk := fakeclock.New(time.Time{})
	f := newFakeJWKS(t, jwkSet(t, key("A")))
	_, v := newRemote(t, Config{URL: f.srv.URL, Clock: clk, TTL: time.Hour})
	ctx := t.Context()

	if err := parse(ctx, v, key("A").sign(t)); err != nil {
		t.Fatal(err)
	}
	f.waitHit(t)
	clk.Advance(time.Hour - time.Nanosecond)
	if err := parse(ctx, v, key("A").sign(t)); err != nil {
		t.Fatal(err)
	}
	if n := f.n.Load(); n != 1 {
		t.Fatalf("%d requests before the TTL, want 1", n)
	}

	f.serve(http.StatusOK, jwkSet(t, key("B")))
	clk.Advance(time.Nanosecond)
	if err := parse(ctx, v, key("A").sign(t)); err != nil {
		t.Fatalf("A at the TTL, served from the old set: %v", err)
	}
	f.waitHit(t)
	// B waits for the refetch in flight, or finds the new set installed.
	if err := parse(ctx, v, key("B").sign(t)); err != nil {
		t.Fatalf("B after the refetch: %v", err)
	}
	if n := f.n.Load(); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
	// A TTL refetch does not use up the unknown-kid budget: the first
	// unknown kid after it still refetches, once.
	for range 2 {
		if err := parse(ctx, v, key("A").sign(t)); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("A, gone from the new set: %v, want ErrUnknownKey", err)
		}
	}
	if n := f.n.Load(); n != 3 {
		t.Errorf("%d requests, want 3 (one for the first unknown kid)", n)
	}
}

// A failed TTL refetch keeps the old set: its kids still verify, and an
// unknown kid (which refetches once, and fails too) is ErrKeysUnavailable
// (the set could not be checked), not ErrUnknownKey, until a fetch
// succeeds again.
func TestRefetchFailureKeepsOldSet(t *testing.T) {
	clk := fakeclock.New(time.Time{})
	f := newFakeJWKS(t, jwkSet(t, key("A")))
	_, v := newRemote(t, Config{URL: f.srv.URL, Clock: clk, TTL: time.Hour, MinRefresh: time.Minute})
	ctx := t.Context()
	if err := parse(ctx, v, key("A").sign(t)); err != nil {
		t.Fatal(err)
	}
	f.waitHit(t)

	f.serve(http.StatusInternalServerError, []byte(secretMarker))
	clk.Advance(time.Hour)
	if err := parse(ctx, v, key("A").sign(t)); err != nil {
		t.Fatalf("A after the TTL with a failing endpoint: %v", err)
	}
	f.waitHit(t)
	err := parse(ctx, v, key("B").sign(t))
	if !errors.Is(err, ErrKeysUnavailable) {
		t.Fatalf("unknown kid after a failed refetch: %v, want ErrKeysUnavailable", err)
	}
	if re, ok := errors.AsType[*auth.ResponseError](err); !ok || re.StatusCode != http.StatusInternalServerError {
		t.Errorf("error %v does not carry the HTTP status 500", err)
	}
	if strings.Contains(err.Error(), secretMarker) {
		t.Errorf("error quotes the body: %v", err)
	}
	if err := parse(ctx, v, key("A").sign(t)); err != nil {
		t.Fatalf("A after the failed refetch: %v", err)
	}
	if err := parse(ctx, v, key("B").sign(t)); !errors.Is(err, ErrKeysUnavailable) {
		t.Fatalf("unknown kid again: %v, want ErrKeysUnavailable", err)
	}
	if n := f.n.Load(); n != 3 {
		t.Fatalf("%d requests, want 3 (the TTL refetch, one for B, no retry within MinRefresh or UnknownKidRefresh)", n)
	}

	f.serve(http.StatusOK, jwkSet(t, key("A"), key("B")))
	clk.Advance(time.Minute)
	if err := parse(ctx, v, key("B").sign(t)); err != nil {
		t.Fatalf("B once the endpoint recovered: %v", err)
	}
}

// A refetch that hangs does not hold up the kids the old set has.
func TestHangingRefetchServesOldSet(t *testing.T) {
	clk := fakeclock.New(time.Time{})
	f := newFakeJWKS(t, jwkSet(t, key("A")))
	_, v := newRemote(t, Config{URL: f.srv.URL, Clock: clk})
	if err := parse(t.Context(), v, key("A").sign(t)); err != nil {
		t.Fatal(err)
	}
	f.hold()
	clk.Advance(2 * time.Hour)
	for range 3 {
		ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
		err := parse(ctx, v, key("A").sign(t))
		cancel()
		if err != nil {
			t.Fatalf("A while a refetch hangs: %v", err)
		}
	}
	if n := f.n.Load(); n > 2 {
		t.Errorf("%d requests, want at most 2 (one refetch)", n)
	}
}

// A first fetch that fails is ErrKeysUnavailable, with the cause and the
// HTTP status, and never the body.
func TestFirstFetchFails(t *testing.T) {
	// A valid set, but too long: without the limit it would verify.
	huge := strings.Replace(string(jwkSet(t, key("A"))), `{"keys"`,
		`{"x":"`+strings.Repeat(secretMarker, (1<<20)/len(secretMarker)+1)+`","keys"`, 1)
	for _, tc := range []struct {
		name   string
		status int // 0: no server answers
		body   string
	}{
		{"HTTP 500", http.StatusInternalServerError, `{"error":"` + secretMarker + `"}`},
		{"HTTP 404", http.StatusNotFound, secretMarker},
		{"not JSON", http.StatusOK, "<html>" + secretMarker + "</html>"},
		{"JSON but not a set", http.StatusOK, `{"error":"` + secretMarker + `"}`},
		{"body over 1 MiB", http.StatusOK, huge},
		{"empty set", http.StatusOK, `{"keys":[]}`},
		{"no usable key", http.StatusOK, `{"keys":[{"kty":"oct","k":"` + secretMarker + `"},` +
			`{"kty":"EC","crv":"P-256","use":"enc","x":"` + secretMarker + `","y":"` + secretMarker + `"},` +
			`{"kty":"RSA","n":"` + secretMarker + `"}]}`},
		{"connection refused", 0, ""},
		{"endless body", http.StatusOK, endless},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeJWKS(t, []byte(tc.body))
			f.serve(tc.status, []byte(tc.body))
			if tc.status == 0 {
				f.srv.Close()
			}
			_, v := newRemote(t, Config{URL: f.srv.URL + "/jwks?key=" + secretMarker})
			ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
			defer cancel()
			err := parse(ctx, v, key("A").sign(t))
			if !errors.Is(err, ErrKeysUnavailable) {
				t.Fatalf("Parse = %v, want ErrKeysUnavailable", err)
			}
			if strings.Contains(err.Error(), secretMarker) {
				t.Errorf("error quotes the body or the query: %v", err)
			}
			if tc.status == 0 {
				_, isURL := errors.AsType[*url.Error](err)
				_, isNet := errors.AsType[net.Error](err)
				if !isURL || !isNet {
					t.Errorf("error %v does not wrap the *url.Error / net.Error", err)
				}
				return
			}
			if re, ok := errors.AsType[*auth.ResponseError](err); !ok || re.StatusCode != tc.status {
				t.Errorf("error %v does not carry the HTTP status %d", err, tc.status)
			}
		})
	}
}

// Redirects stay on https, at most 10 of them, and the client's own policy
// still applies.
func TestRedirects(t *testing.T) {
	plain := newFakeJWKS(t, jwkSet(t, key("A")))
	body := jwkSet(t, key("A"))
	var hops int
	var mu sync.Mutex
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hops++
		mu.Unlock()
		switch r.URL.Path {
		case "/to-http":
			http.Redirect(w, r, plain.srv.URL, http.StatusFound)
		case "/to-https":
			http.Redirect(w, r, "/jwks", http.StatusFound)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		case "/jwks":
			w.Write(body)
		}
	}))
	t.Cleanup(tlsSrv.Close)
	lastResponse := new(http.Client)
	*lastResponse = *tlsSrv.Client()
	lastResponse.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	for _, tc := range []struct {
		name     string
		path     string
		client   *http.Client
		want     error // nil: Parse succeeds
		wantHops int
	}{
		{"https to http refused", "/to-http", tlsSrv.Client(), errInsecureRedirect, 1},
		{"https to https followed", "/to-https", tlsSrv.Client(), nil, 2},
		{"at most 10 redirects", "/loop", tlsSrv.Client(), errTooManyRedirects, 10},
		{"the client's policy applies", "/to-https", lastResponse, ErrKeysUnavailable, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			hops = 0
			mu.Unlock()
			_, v := newRemote(t, Config{URL: tlsSrv.URL + tc.path, HTTPClient: tc.client})
			err := parse(t.Context(), v, key("A").sign(t))
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Parse = %v, want %v", err, tc.want)
			}
			if tc.want != nil && !errors.Is(err, ErrKeysUnavailable) {
				t.Errorf("Parse = %v, want ErrKeysUnavailable", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if hops != tc.wantHops {
				t.Errorf("%d requests to the https server, want %d", hops, tc.wantHops)
			}
		})
	}
	if n := plain.n.Load(); n != 0 {
		t.Errorf("the http target got %d requests, want 0", n)
	}
	if tlsSrv.Client().CheckRedirect != nil {
		t.Error("NewKeySet changed the caller's client")
	}
}

// A JWK's "alg" and "use" restrict what it verifies (RFC 7517 §4.2, §4.4).
func TestJWKMetadataRestricts(t *testing.T) {
	rs256 := jwkOf(t, key("rsa"))
	rs256.ALG = "RS256"
	enc := jwkOf(t, key("A").withKid("enc"))
	enc.USE = "enc"
	set := marshalSet(t, rs256, enc)
	f := newFakeJWKS(t, set)
	_, v := newRemote(t, Config{URL: f.srv.URL})
	for _, tc := range []struct {
		name string
		raw  string
		want error
	}{
		{"RS256 key, RS256 token", key("rsa").sign(t), nil},
		{"RS256 key, PS256 token", key("pss").sign(t), ErrUnknownKey},
		{"encryption key", key("A").withKid("enc").sign(t), ErrUnknownKey},
		{"no kid: every key of the set", key("rsa").withKid("").sign(t), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := parse(t.Context(), v, tc.raw); !errors.Is(err, tc.want) {
				t.Fatalf("Parse = %v, want %v", err, tc.want)
			}
		})
	}
}

// After Close, lookups fail with ErrClosed, even from the cache; Close is
// idempotent.
func TestClose(t *testing.T) {
	f := newFakeJWKS(t, jwkSet(t, key("A")))
	ks, v := newRemote(t, Config{URL: f.srv.URL})
	if err := parse(t.Context(), v, key("A").sign(t)); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := ks.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
		err := parse(t.Context(), v, key("A").sign(t))
		if !errors.Is(err, errClosed) || !errors.Is(err, auth.ErrClosed) {
			t.Fatalf("Parse after Close #%d = %v, want ErrClosed", i+1, err)
		}
	}
	if n := f.n.Load(); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}
