package handlers_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/authtest"
	"github.com/authkit-go/authkit/handlers"
)

// failsafe bounds waits on goroutines that a broken handler would leave
// hanging; no test relies on it to pass.
const failsafe = 10 * time.Second

// makeJWT signs claims (HS256, a test key): a real compact JWT.
func makeJWT(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte("test-signing-key"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// userJWT returns a JWT for alice that expires at exp; id tells tokens apart.
func userJWT(t testing.TB, id string, exp time.Time) string {
	return makeJWT(t, jwt.MapClaims{"sub": "alice", "email": "alice@example.com", "jti": id, "exp": exp.Unix()})
}

// unsignedJWT assembles a compact JWT from a header and claims, with a dummy
// signature.
func unsignedJWT(header, claims string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(header)) + "." + enc([]byte(claims)) + "." + enc([]byte("signature"))
}

// fakeApp is the application's login: it counts callback calls and answers
// with fn.
type fakeApp struct {
	calls atomic.Int32
	fn    func(ctx context.Context, call int) (string, time.Time, error)
}

func (a *fakeApp) callback(ctx context.Context) (string, time.Time, error) {
	return a.fn(ctx, int(a.calls.Add(1)))
}

// notifyClock is the fake clock, reporting every AfterFunc's duration on
// afters (non-blocking; the buffer is large enough for a test).
type notifyClock struct {
	*authtest.Clock
	afters chan time.Duration
}

func newNotifyClock() notifyClock {
	return notifyClock{Clock: authtest.NewClock(time.Time{}), afters: make(chan time.Duration, 64)}
}

func (c notifyClock) AfterFunc(d time.Duration, f func()) auth.Timer {
	t := c.Clock.AfterFunc(d, f)
	select {
	case c.afters <- d:
	default:
	}
	return t
}

func newJWTHandler(t *testing.T, cfg handlers.ExternallyManagedJWTConfig) *handlers.ExternallyManagedJWT {
	t.Helper()
	h, err := handlers.NewExternallyManagedJWT(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeWithin(t, h) })
	return h
}

// closeWithin fails the test if Close does not return.
func closeWithin(t *testing.T, h *handlers.ExternallyManagedJWT) {
	t.Helper()
	done := make(chan struct{})
	go func() { h.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(failsafe):
		t.Fatal("Close did not return")
	}
}

func hubAuthorization(t *testing.T, h auth.AuthenticationHandler, ctx context.Context) string {
	t.Helper()
	hdr, err := h.HubRequestHeaders(ctx)
	if err != nil {
		t.Fatalf("HubRequestHeaders() error: %v", err)
	}
	return hdr.Get("Authorization")
}

func TestExternalJWTInitialUsedWithoutCallback(t *testing.T) {
	clock := authtest.NewClock(time.Time{})
	noExp := makeJWT(t, jwt.MapClaims{"sub": "alice"})
	tests := []struct {
		name   string
		jwt    string
		expiry time.Time
	}{
		{"exp claim", userJWT(t, "initial", clock.Now().Add(time.Hour)), time.Time{}},
		{"expiry given, no exp claim", noExp, clock.Now().Add(time.Hour)},
		{"expiry given, earlier than exp", userJWT(t, "initial", clock.Now().Add(2*time.Hour)), clock.Now().Add(time.Hour)},
		{"algorithm unknown to golang-jwt", unsignedJWT(`{"alg":"ES256K","typ":"JWT"}`,
			fmt.Sprintf(`{"sub":"alice","exp":%d}`, clock.Now().Add(time.Hour).Unix())), time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := &fakeApp{fn: func(context.Context, int) (string, time.Time, error) {
				return "", time.Time{}, errors.New("callback must not be called")
			}}
			h := newJWTHandler(t, handlers.ExternallyManagedJWTConfig{
				JWT: auth.NewSecret(tt.jwt), Expiry: tt.expiry, Callback: app.callback, Clock: clock,
			})
			ctx := context.Background()
			if err := h.Authenticate(ctx); err != nil {
				t.Fatalf("Authenticate() = %v", err)
			}
			if got, want := hubAuthorization(t, h, ctx), "Bearer "+tt.jwt; got != want {
				t.Errorf("hub Authorization = %q, want %q", got, want)
			}
			if !h.Authenticated() {
				t.Error("Authenticated() = false")
			}
			if got := h.Username(); got != "alice" {
				t.Errorf("Username() = %q, want alice (sub)", got)
			}
			if n := app.calls.Load(); n != 0 {
				t.Errorf("callback called %d times, want 0", n)
			}
		})
	}
}

func TestExternalJWTConfigErrors(t *testing.T) {
	now := time.Now()
	cb := func(context.Context) (string, time.Time, error) { return "", time.Time{}, nil }
	tests := []struct {
		name string
		cfg  handlers.ExternallyManagedJWTConfig
		want error
	}{
		{"no callback", handlers.ExternallyManagedJWTConfig{}, auth.ErrInvalidConfig},
		{"store without key", handlers.ExternallyManagedJWTConfig{Callback: cb, Store: &auth.MemoryStore{}}, auth.ErrInvalidConfig},
		{"expiry without JWT", handlers.ExternallyManagedJWTConfig{Callback: cb, Expiry: now}, auth.ErrInvalidConfig},
		{"uppercase metadata key", handlers.ExternallyManagedJWTConfig{Callback: cb,
			Wire: auth.Wire{MessageService: auth.Field{Name: "Token"}}}, auth.ErrInvalidConfig},
		{"negative margin", handlers.ExternallyManagedJWTConfig{Callback: cb, Margin: auth.Margin{Min: -1}}, auth.ErrInvalidConfig},
		{"initial JWT without exp or expiry", handlers.ExternallyManagedJWTConfig{Callback: cb,
			JWT: auth.NewSecret(makeJWT(t, jwt.MapClaims{"sub": "alice"}))}, handlers.ErrNoExpiry},
		{"initial JWT malformed", handlers.ExternallyManagedJWTConfig{Callback: cb, JWT: auth.NewSecret("not-a-jwt")}, auth.ErrMalformedToken},
		{"initial JWT of another user", handlers.ExternallyManagedJWTConfig{Callback: cb,
			JWT: auth.NewSecret(userJWT(t, "x", now.Add(time.Hour))), Username: "bob", UsernameClaim: "sub"}, auth.ErrUserMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := handlers.NewExternallyManagedJWT(tt.cfg)
			if !errors.Is(err, tt.want) {
				if h != nil {
					h.Close()
				}
				t.Fatalf("NewExternallyManagedJWT() error = %v, want one wrapping %v", err, tt.want)
			}
			if tt.cfg.JWT.Reveal() != "" && strings.Contains(err.Error(), tt.cfg.JWT.Reveal()) {
				t.Errorf("error %q shows the JWT", err)
			}
		})
	}
	if !errors.Is(handlers.ErrNoExpiry, auth.ErrMalformedToken) {
		t.Error("ErrNoExpiry does not wrap auth.ErrMalformedToken")
	}
}

// The earlier of the expiry given and the JWT's own exp wins: the service
// goes by exp, so a later expiry given cannot make an expired JWT usable.
func TestExternalJWTExpCapsExpiryGiven(t *testing.T) {
	clock := authtest.NewClock(time.Time{})
	expired := userJWT(t, "initial", clock.Now().Add(-time.Hour))
	next := userJWT(t, "next", clock.Now().Add(time.Hour))
	app := &fakeApp{fn: func(context.Context, int) (string, time.Time, error) { return next, time.Time{}, nil }}
	h := newJWTHandler(t, handlers.ExternallyManagedJWTConfig{
		JWT: auth.NewSecret(expired), Expiry: clock.Now().Add(time.Hour), Callback: app.callback, Clock: clock,
	})
	if got := hubAuthorization(t, h, context.Background()); got != "Bearer "+next {
		t.Errorf("hub Authorization = %q, want the callback's JWT: the initial one is past its exp", got)
	}
}

// TestExternalJWTOneCallbackAfterExpiry: 64 callers that find the JWT
// expired share one callback call.
func TestExternalJWTOneCallbackAfterExpiry(t *testing.T) {
	clock := authtest.NewClock(time.Time{})
	initial := userJWT(t, "initial", clock.Now().Add(10*time.Minute))
	next := userJWT(t, "next", clock.Now().Add(70*time.Minute))
	entered, release := make(chan struct{}, 64), make(chan struct{})
	app := &fakeApp{fn: func(ctx context.Context, _ int) (string, time.Time, error) {
		entered <- struct{}{}
		select {
		case <-release:
			return next, time.Time{}, nil
		case <-ctx.Done():
			return "", time.Time{}, ctx.Err()
		}
	}}
	h := newJWTHandler(t, handlers.ExternallyManagedJWTConfig{JWT: auth.NewSecret(initial), Callback: app.callback, Clock: clock})

	clock.Advance(10 * time.Minute) // past the margin and the expiry
	if h.Authenticated() {
		t.Fatal("Authenticated() = true after expiry")
	}
	const callers = 64
	var ready, done sync.WaitGroup
	ready.Add(callers)
	results := make(chan string, callers)
	for range callers {
		done.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), failsafe)
			defer cancel()
			ready.Done()
			hdr, err := h.HubRequestHeaders(ctx)
			if err != nil {
				results <- "error: " + err.Error()
				return
			}
			results <- hdr.Get("Authorization")
		})
	}
	ready.Wait()
	<-entered // the one call is under way while the callers ask
	close(release)
	done.Wait()
	close(results)
	for got := range results {
		if got != "Bearer "+next {
			t.Errorf("a caller got %q, want the new JWT", got)
		}
	}
	if n := app.calls.Load(); n != 1 {
		t.Errorf("callback called %d times for %d callers, want 1", n, callers)
	}
}

// TestExternalJWTProactiveRefresh: inside the margin, one callback call runs
// in the background while the getters keep serving the current JWT.
func TestExternalJWTProactiveRefresh(t *testing.T) {
	clock := authtest.NewClock(time.Time{})
	old := userJWT(t, "old", clock.Now().Add(10*time.Minute))
	next := userJWT(t, "next", clock.Now().Add(70*time.Minute))
	entered, release := make(chan struct{}, 8), make(chan struct{})
	app := &fakeApp{fn: func(ctx context.Context, _ int) (string, time.Time, error) {
		entered <- struct{}{}
		select {
		case <-release:
			return next, time.Time{}, nil
		case <-ctx.Done():
			return "", time.Time{}, ctx.Err()
		}
	}}
	h := newJWTHandler(t, handlers.ExternallyManagedJWTConfig{JWT: auth.NewSecret(old), Callback: app.callback, Clock: clock})

	hubAuthorization(t, h, context.Background())  // in use: refreshed in the background
	clock.Advance(9*time.Minute + 30*time.Second) // inside the 1-minute margin
	select {
	case <-entered:
	case <-time.After(failsafe):
		t.Fatal("no background callback call inside the margin")
	}
	// A cancelled ctx proves the getters do not wait: only the hot path
	// can answer it.
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for range 3 {
		if got := hubAuthorization(t, h, cancelled); got != "Bearer "+old {
			t.Fatalf("during the refresh, hub Authorization = %q, want the old JWT", got)
		}
		md, err := h.MessageServiceMetadata(cancelled)
		if err != nil || md["authorization"] != "Bearer "+old {
			t.Fatalf("during the refresh, metadata = %v, %v; want the old JWT", md, err)
		}
	}
	close(release)
	clock.Advance(30 * time.Second) // the old JWT expires; the new one is served either way
	ctx, cancelT := context.WithTimeout(context.Background(), failsafe)
	defer cancelT()
	if got := hubAuthorization(t, h, ctx); got != "Bearer "+next {
		t.Errorf("after the refresh, hub Authorization = %q, want the new JWT", got)
	}
	if n := app.calls.Load(); n != 1 {
		t.Errorf("callback called %d times, want 1", n)
	}
	if s := h.Stats(); s.Refreshes != 1 || s.Fetches != 1 {
		t.Errorf("Stats() = %+v, want 1 fetch, started early", s)
	}
}

func TestExternalJWTFetchErrors(t *testing.T) {
	errLogin := errors.New("app: session ended")
	clock := authtest.NewClock(time.Time{})
	exp := clock.Now().Add(time.Hour)
	valid := userJWT(t, "x", exp)
	parts := strings.Split(valid, ".")
	tests := []struct {
		name    string
		jwt     string
		expires time.Time
		err     error
		cfg     handlers.ExternallyManagedJWTConfig
		want    []error
	}{
		{name: "callback error", err: errLogin, want: []error{errLogin}},
		{name: "no exp and no expiry", jwt: makeJWT(t, jwt.MapClaims{"sub": "alice"}),
			want: []error{handlers.ErrNoExpiry, auth.ErrMalformedToken}},
		{name: "empty", jwt: "", want: []error{auth.ErrMalformedToken}},
		{name: "two segments", jwt: parts[0] + "." + parts[1], want: []error{auth.ErrMalformedToken}},
		{name: "header not base64", jwt: "%%%." + parts[1] + "." + parts[2], want: []error{auth.ErrMalformedToken}},
		{name: "claims not JSON", jwt: parts[0] + ".bm90IGpzb24." + parts[2], want: []error{auth.ErrMalformedToken}},
		{name: "exp not a number", jwt: makeJWT(t, jwt.MapClaims{"exp": "tomorrow"}), want: []error{auth.ErrMalformedToken}},
		{name: "line break", jwt: valid + "\r\nX-Evil: 1", expires: exp, want: []error{auth.ErrMalformedToken}},
		{name: "another user", jwt: valid, cfg: handlers.ExternallyManagedJWTConfig{Username: "bob", UsernameClaim: "sub"},
			want: []error{auth.ErrUserMismatch}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := &fakeApp{fn: func(context.Context, int) (string, time.Time, error) { return tt.jwt, tt.expires, tt.err }}
			cfg := tt.cfg
			cfg.Callback, cfg.Clock = app.callback, clock
			h := newJWTHandler(t, cfg)
			ctx, cancel := context.WithTimeout(context.Background(), failsafe)
			defer cancel()
			_, err := h.HubRequestHeaders(ctx)
			for _, want := range tt.want {
				if !errors.Is(err, want) {
					t.Errorf("HubRequestHeaders() error = %v, want one wrapping %v", err, want)
				}
			}
			if err := h.Authenticate(ctx); !errors.Is(err, tt.want[0]) {
				t.Errorf("Authenticate() error = %v, want one wrapping %v", err, tt.want[0])
			}
			if tt.jwt != "" && err != nil && strings.Contains(err.Error(), tt.jwt) {
				t.Errorf("error %q shows the JWT", err)
			}
			if h.Authenticated() {
				t.Error("Authenticated() = true without a usable JWT")
			}
			if n := app.calls.Load(); n != 1 {
				t.Errorf("callback called %d times, want 1 (the failure is remembered until the backoff ends)", n)
			}
		})
	}
}

// A JWT too close to its expiry — judged on its whole lifetime, from its
// "iat" — is asked for again, with the engine's backoff, for as long as the
// caller waits.
func TestExternalJWTStaleRetries(t *testing.T) {
	tests := []struct {
		name string
		// issuedAgo and expiresIn describe the JWT of each call; the last repeats.
		issuedAgo, expiresIn []time.Duration
		wantCalls            int32
		wantErr              bool
	}{
		{"expired, fresh on the second call", []time.Duration{time.Hour, 0}, []time.Duration{-time.Minute, time.Hour}, 2, false},
		{"expired twice, fresh on the third call", []time.Duration{time.Hour, time.Hour, 0}, []time.Duration{-time.Minute, -time.Second, time.Hour}, 3, false},
		{"an hour-long JWT with 3 s left is stale", []time.Duration{time.Hour, 0}, []time.Duration{3 * time.Second, time.Hour}, 2, false},
		{"an hour-long JWT with a minute left is served", []time.Duration{time.Hour}, []time.Duration{time.Minute}, 1, false},
		{"a 6-second JWT is served", []time.Duration{0}, []time.Duration{6 * time.Second}, 1, false},
		{"always expired: the caller giving up ends the wait", []time.Duration{time.Hour}, []time.Duration{-time.Minute}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newNotifyClock()
			app := &fakeApp{fn: func(_ context.Context, call int) (string, time.Time, error) {
				now := clock.Now()
				iat := now.Add(-tt.issuedAgo[min(call, len(tt.issuedAgo))-1])
				exp := now.Add(tt.expiresIn[min(call, len(tt.expiresIn))-1])
				return makeJWT(t, jwt.MapClaims{"sub": "alice", "jti": fmt.Sprint(call), "iat": iat.Unix(), "exp": exp.Unix()}), time.Time{}, nil
			}}
			h := newJWTHandler(t, handlers.ExternallyManagedJWTConfig{Callback: app.callback, Clock: clock})
			ctx, cancel := context.WithTimeout(context.Background(), failsafe)
			defer cancel()
			result := make(chan error, 1)
			go func() {
				_, err := h.AccessManagerRequestHeaders(ctx)
				result <- err
			}()
			for {
				select {
				case d := <-clock.afters:
					if tt.wantErr {
						// The engine waits to ask again: the failed attempt
						// is on record. The caller gives up now (it used to
						// race a real 300 ms deadline, which under load could
						// end before the first attempt).
						cancel()
						continue
					}
					// The backoff before asking again, until the call that
					// returns a usable JWT; after it, a timer is the next
					// refresh, which the test does not reach (advancing to it
					// used to make a second call when the timer of a short
					// token was seen before the caller's result).
					if d < time.Minute && app.calls.Load() < tt.wantCalls {
						clock.Advance(d)
					}
					continue
				case err := <-result:
					if tt.wantErr {
						if !errors.Is(err, auth.ErrTokenExpired) || !errors.Is(err, context.Canceled) {
							t.Errorf("error = %v, want one wrapping auth.ErrTokenExpired and the caller's cancellation", err)
						}
						return
					}
					if err != nil {
						t.Fatalf("error = %v, want success", err)
					}
					if n := app.calls.Load(); n != tt.wantCalls {
						t.Errorf("callback called %d times, want %d", n, tt.wantCalls)
					}
					return
				}
			}
		})
	}
}

// TestExternalJWTStaleWaitEndsOnClose: Close ends a fetch that waits to ask
// the callback again.
func TestExternalJWTStaleWaitEndsOnClose(t *testing.T) {
	clock := newNotifyClock()
	app := &fakeApp{fn: func(context.Context, int) (string, time.Time, error) {
		return userJWT(t, "stale", clock.Now().Add(-time.Second)), time.Time{}, nil
	}}
	h, err := handlers.NewExternallyManagedJWT(handlers.ExternallyManagedJWTConfig{Callback: app.callback, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := h.HubRequestHeaders(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("HubRequestHeaders() error = %v, want the caller's deadline", err)
	}
	select {
	case <-clock.afters: // the fetch waits on the fake clock, which never moves
	case <-time.After(failsafe):
		t.Fatal("the fetch did not wait before asking again")
	}
	closeWithin(t, h)
	if n := app.calls.Load(); n != 1 {
		t.Errorf("callback called %d times, want 1", n)
	}
	if _, err := h.HubRequestHeaders(context.Background()); !errors.Is(err, auth.ErrClosed) {
		t.Errorf("after Close, error = %v, want auth.ErrClosed", err)
	}
}

// TestExternalJWTCallerCtxEndsWait: a callback that does not return holds
// no caller longer than its ctx, and Close still returns (it cancels the
// callback's ctx).
func TestExternalJWTCallerCtxEndsWait(t *testing.T) {
	sawCtxErr := make(chan error, 1)
	app := &fakeApp{fn: func(ctx context.Context, _ int) (string, time.Time, error) {
		<-ctx.Done()
		sawCtxErr <- ctx.Err()
		return "", time.Time{}, ctx.Err()
	}}
	h, err := handlers.NewExternallyManagedJWT(handlers.ExternallyManagedJWTConfig{
		Callback: app.callback, Clock: authtest.NewClock(time.Time{}),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, call := range []struct {
		name string
		do   func(context.Context) error
	}{
		{"Authenticate", h.Authenticate},
		{"HubRequestHeaders", func(ctx context.Context) error { _, err := h.HubRequestHeaders(ctx); return err }},
		{"MessageServiceMetadata", func(ctx context.Context) error { _, err := h.MessageServiceMetadata(ctx); return err }},
	} {
		t.Run(call.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			if err := call.do(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("error = %v, want the caller's deadline", err)
			}
		})
	}
	closeWithin(t, h)
	select {
	case err := <-sawCtxErr:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("the callback's ctx ended with %v, want context.Canceled by Close", err)
		}
	default:
		t.Error("the callback's ctx was not cancelled by Close")
	}
	if n := app.calls.Load(); n != 1 {
		t.Errorf("callback called %d times, want 1 (the callers share it)", n)
	}
}

func TestExternalJWTWireFormat(t *testing.T) {
	clock := authtest.NewClock(time.Time{})
	tok := userJWT(t, "wire", clock.Now().Add(time.Hour))
	tests := []struct {
		name    string
		wire    auth.Wire
		wantHub http.Header
		wantAM  http.Header
		wantMS  map[string]string
	}{
		{
			name:    "defaults",
			wantHub: http.Header{"Authorization": {"Bearer " + tok}},
			wantAM:  http.Header{"Authorization": {"Bearer " + tok}},
			wantMS:  map[string]string{"authorization": "Bearer " + tok},
		},
		{
			name:    "bare token metadata",
			wire:    auth.Wire{MessageService: auth.Field{Name: "token"}},
			wantHub: http.Header{"Authorization": {"Bearer " + tok}},
			wantAM:  http.Header{"Authorization": {"Bearer " + tok}},
			wantMS:  map[string]string{"token": tok},
		},
		{
			name:    "custom hub header",
			wire:    auth.Wire{Hub: auth.Field{Name: "x-hub-token"}},
			wantHub: http.Header{"X-Hub-Token": {tok}},
			wantAM:  http.Header{"Authorization": {"Bearer " + tok}},
			wantMS:  map[string]string{"authorization": "Bearer " + tok},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := &fakeApp{fn: func(context.Context, int) (string, time.Time, error) { return tok, time.Time{}, nil }}
			h := newJWTHandler(t, handlers.ExternallyManagedJWTConfig{Callback: app.callback, Clock: clock, Wire: tt.wire})
			ctx := context.Background()
			hub, err := h.HubRequestHeaders(ctx)
			if err != nil {
				t.Fatal(err)
			}
			am, _ := h.AccessManagerRequestHeaders(ctx)
			ms, _ := h.MessageServiceMetadata(ctx)
			for _, c := range []struct {
				name      string
				got, want http.Header
			}{{"hub", hub, tt.wantHub}, {"access manager", am, tt.wantAM}} {
				if len(c.got) != len(c.want) {
					t.Errorf("%s headers = %v, want %v", c.name, c.got, c.want)
				}
				received := sendHeaders(t, c.got)
				for k, v := range c.want {
					if got := received.Values(k); len(got) != 1 || got[0] != v[0] {
						t.Errorf("%s received %s: %q, want %q", c.name, k, got, v)
					}
				}
			}
			if !maps.Equal(ms, tt.wantMS) {
				t.Errorf("metadata = %v, want %v", ms, tt.wantMS)
			}
		})
	}
}

func TestExternalJWTUsername(t *testing.T) {
	clock := authtest.NewClock(time.Time{})
	exp := clock.Now().Add(time.Hour).Unix()
	tok := makeJWT(t, jwt.MapClaims{"sub": "u-123", "preferred_username": "alice", "email": "alice@example.com", "n": 7, "exp": exp})
	tests := []struct {
		name, username, claim, want string
	}{
		{"default claim sub", "", "", "u-123"},
		{"preferred_username", "", "preferred_username", "alice"},
		{"email", "", "email", "alice@example.com"},
		{"absent claim", "", "upn", ""},
		{"claim not a string", "", "n", ""},
		{"configured", "carol", "", "carol"},
		{"configured and matching claim", "alice", "preferred_username", "alice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := &fakeApp{fn: func(context.Context, int) (string, time.Time, error) { return tok, time.Time{}, nil }}
			h := newJWTHandler(t, handlers.ExternallyManagedJWTConfig{
				Callback: app.callback, Clock: clock, Username: tt.username, UsernameClaim: tt.claim,
			})
			if tt.username == "" {
				if got := h.Username(); got != "" {
					t.Errorf("Username() before any JWT = %q, want empty", got)
				}
			}
			if err := h.Authenticate(context.Background()); err != nil {
				t.Fatal(err)
			}
			for range 2 { // the second answer comes from the cache
				if got := h.Username(); got != tt.want {
					t.Errorf("Username() = %q, want %q", got, tt.want)
				}
			}
		})
	}
}

func TestExternalJWTUsernameFollowsToken(t *testing.T) {
	clock := authtest.NewClock(time.Time{})
	app := &fakeApp{fn: func(_ context.Context, call int) (string, time.Time, error) {
		return makeJWT(t, jwt.MapClaims{"sub": fmt.Sprint("user-", call), "exp": clock.Now().Add(time.Hour).Unix()}), time.Time{}, nil
	}}
	h := newJWTHandler(t, handlers.ExternallyManagedJWTConfig{Callback: app.callback, Clock: clock})
	ctx := context.Background()
	for _, want := range []string{"user-1", "user-2"} {
		if err := h.Authenticate(ctx); err != nil {
			t.Fatal(err)
		}
		if got := h.Username(); got != want {
			t.Errorf("Username() = %q, want %q", got, want)
		}
		h.Invalidate(auth.ServiceHub, "") // the next use asks the application again
	}
}

// TestExternalJWTInvalidate: a rejected JWT is replaced by one callback
// call, however many requests were rejected.
func TestExternalJWTInvalidate(t *testing.T) {
	clock := authtest.NewClock(time.Time{})
	initial := userJWT(t, "initial", clock.Now().Add(time.Hour))
	next := userJWT(t, "next", clock.Now().Add(2*time.Hour))
	app := &fakeApp{fn: func(context.Context, int) (string, time.Time, error) { return next, time.Time{}, nil }}
	h := newJWTHandler(t, handlers.ExternallyManagedJWTConfig{JWT: auth.NewSecret(initial), Callback: app.callback, Clock: clock})
	for range 5 {
		h.Invalidate(auth.ServiceHub, "Bearer "+initial)
	}
	ctx := context.Background()
	if got := hubAuthorization(t, h, ctx); got != "Bearer "+next {
		t.Errorf("after Invalidate, hub Authorization = %q, want the new JWT", got)
	}
	h.Invalidate(auth.ServiceHub, "Bearer "+initial) // stale rejection: ignored
	if got := hubAuthorization(t, h, ctx); got != "Bearer "+next {
		t.Errorf("hub Authorization = %q, want the new JWT", got)
	}
	if n := app.calls.Load(); n != 1 {
		t.Errorf("callback called %d times, want 1", n)
	}
}

func TestExternalJWTNeverPrintsToken(t *testing.T) {
	clock := newNotifyClock()
	initial := userJWT(t, "initial", clock.Now().Add(10*time.Minute))
	stale := userJWT(t, "stale", clock.Now().Add(-time.Second))
	logs := &authtest.LogBuffer{} // the engine logs from its own goroutine
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	app := &fakeApp{fn: func(context.Context, int) (string, time.Time, error) { return stale, time.Time{}, nil }}
	cfg := handlers.ExternallyManagedJWTConfig{JWT: auth.NewSecret(initial), Callback: app.callback, Clock: clock, Logger: logger}
	h := newJWTHandler(t, cfg)

	// Produce debug and warning records: a refresh whose callback returns a
	// stale token, a retry, while the initial JWT stays in use.
	hubAuthorization(t, h, context.Background()) // read: the refresh timer refreshes
	clock.Advance(9 * time.Minute)
	deadline := time.Now().Add(failsafe)
	for !strings.Contains(logs.String(), "too close to its expiry") {
		if time.Now().After(deadline) {
			t.Fatalf("the stale token's retry was not logged; logs:\n%s", logs.String())
		}
		time.Sleep(time.Millisecond) // a wait for a background goroutine, not for an expiry
	}
	// A config holds live dependencies (the clock the engine is using now):
	// printing it by reflection would race with them, whatever it holds.
	cfg.Clock, cfg.Logger = nil, nil
	logger.Info("handler", "handler", h, "config", cfg, "config_ptr", &cfg)
	slog.New(slog.NewTextHandler(logs, nil)).Info("handler", "handler", h, "config", cfg)

	outputs := map[string]string{"slog": logs.String()}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		outputs["handler "+verb] = fmt.Sprintf(verb, h)
		outputs["config "+verb] = fmt.Sprintf(verb, cfg)
		outputs["config pointer "+verb] = fmt.Sprintf(verb, &cfg)
	}
	for name, out := range outputs {
		t.Run(name, func(t *testing.T) {
			for _, secret := range []string{initial, stale} {
				for _, part := range strings.Split(secret, ".") {
					if strings.Contains(out, part) {
						t.Errorf("output shows a JWT segment %q: %s", part, out)
					}
				}
			}
			if strings.HasPrefix(name, "config") && !strings.Contains(out, "redacted") {
				t.Errorf("output %s should say the JWT is redacted", out)
			}
		})
	}
}

func ExampleNewExternallyManagedJWT() {
	// The application owns the login; here it signs its own JWT.
	login := func(ctx context.Context) (string, time.Time, error) {
		claims := jwt.MapClaims{"sub": "alice@example.com", "exp": time.Now().Add(time.Hour).Unix()}
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte("app-key"))
		return tok, time.Time{}, err // zero expiry: read "exp" from the JWT
	}
	h, err := handlers.NewExternallyManagedJWT(handlers.ExternallyManagedJWTConfig{
		Callback: login,
		// The message service of this platform wants the bare token.
		Wire: auth.Wire{MessageService: auth.Field{Name: "token"}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer h.Close()

	ctx := context.Background()
	if err := h.Authenticate(ctx); err != nil {
		fmt.Println(err)
		return
	}
	hub, _ := h.HubRequestHeaders(ctx)
	md, _ := h.MessageServiceMetadata(ctx)
	fmt.Println("user:", h.Username())
	fmt.Println("hub sends a bearer token:", strings.HasPrefix(hub.Get("Authorization"), "Bearer ey"))
	fmt.Println("message service sends the bare JWT:", strings.HasPrefix(md["token"], "ey"))
	fmt.Println(h.Authenticated())
	// Output:
	// user: alice@example.com
	// hub sends a bearer token: true
	// message service sends the bare JWT: true
	// true
}

// TestExternalJWTStore: a JWT saved by one handler is used by the next one
// with the same store and key, without calling its callback.
func TestExternalJWTStore(t *testing.T) {
	clock := authtest.NewClock(time.Time{})
	store := &auth.MemoryStore{}
	key := auth.StoreKey{Issuer: "https://login.example.com", ClientID: "app"}
	tok := userJWT(t, "stored", clock.Now().Add(time.Hour))
	first := &fakeApp{fn: func(context.Context, int) (string, time.Time, error) { return tok, time.Time{}, nil }}
	second := &fakeApp{fn: func(context.Context, int) (string, time.Time, error) {
		return "", time.Time{}, errors.New("callback must not be called")
	}}
	tests := []struct {
		name string
		app  *fakeApp
	}{{"first run calls back", first}, {"second run uses the store", second}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newJWTHandler(t, handlers.ExternallyManagedJWTConfig{
				Callback: tt.app.callback, Clock: clock, Store: store, StoreKey: key,
			})
			if got := hubAuthorization(t, h, context.Background()); got != "Bearer "+tok {
				t.Errorf("hub Authorization = %q, want the stored JWT", got)
			}
		})
	}
	if n1, n2 := first.calls.Load(), second.calls.Load(); n1 != 1 || n2 != 0 {
		t.Errorf("callback calls = %d, %d; want 1, 0", n1, n2)
	}
}

func BenchmarkExternalJWTGetters(b *testing.B) {
	clock := authtest.NewClock(time.Time{})
	tok := userJWT(b, "bench", clock.Now().Add(time.Hour))
	h, err := handlers.NewExternallyManagedJWT(handlers.ExternallyManagedJWTConfig{
		JWT: auth.NewSecret(tok), Clock: clock,
		Callback: func(context.Context) (string, time.Time, error) { return "", time.Time{}, errors.New("not called") },
	})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	ctx := context.Background()
	b.Run("Hub", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = h.HubRequestHeaders(ctx)
		}
	})
	b.Run("MessageService", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = h.MessageServiceMetadata(ctx)
		}
	})
	b.Run("Parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_, _ = h.HubRequestHeaders(ctx)
			}
		})
	})
}

// Item 10 of the engine v2 issue: a 6-second JWT is usable; the margin is
// capped for short tokens as the engine's is.
func TestExternalJWTShortLivedTokens(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), failsafe)
	defer cancel()
	app := &fakeApp{fn: func(_ context.Context, n int) (string, time.Time, error) {
		return userJWT(t, fmt.Sprint(n), time.Now().Add(6*time.Second)), time.Time{}, nil
	}}
	h := newJWTHandler(t, handlers.ExternallyManagedJWTConfig{Callback: app.callback})
	ok := 0
	for range 50 {
		if _, err := h.HubRequestHeaders(ctx); err == nil {
			ok++
		}
	}
	if ok != 50 {
		t.Errorf("%d of 50 calls succeeded with 6 s JWTs, want all", ok)
	}
}

// Item 10: one service rejecting a JWT that the application still returns
// must not block every service: the handler backs off and serves it again.
func TestExternalJWTRejectedButStillReturned(t *testing.T) {
	clock := authtest.NewClock(time.Time{})
	jwt := userJWT(t, "only", clock.Now().Add(time.Hour))
	app := &fakeApp{fn: func(context.Context, int) (string, time.Time, error) { return jwt, time.Time{}, nil }}
	h := newJWTHandler(t, handlers.ExternallyManagedJWTConfig{Callback: app.callback, Clock: clock})
	ctx := context.Background()
	hubAuthorization(t, h, ctx)
	h.Invalidate(auth.ServiceHub, "Bearer "+jwt) // the hub said 401
	for i := range 10 {
		md, err := h.MessageServiceMetadata(ctx)
		if err != nil {
			t.Fatalf("call %d after the hub's rejection: %v", i, err)
		}
		if md["authorization"] != "Bearer "+jwt {
			t.Fatalf("metadata = %q", md["authorization"])
		}
	}
}

// OnRejected tells the application which service rejected its JWT.
func TestExternalJWTOnRejected(t *testing.T) {
	clock := authtest.NewClock(time.Time{})
	first := userJWT(t, "first", clock.Now().Add(time.Hour))
	second := userJWT(t, "second", clock.Now().Add(time.Hour))
	app := &fakeApp{fn: func(context.Context, int) (string, time.Time, error) { return second, time.Time{}, nil }}
	rejected := make(chan auth.Service, 1)
	h := newJWTHandler(t, handlers.ExternallyManagedJWTConfig{JWT: auth.NewSecret(first), Callback: app.callback, Clock: clock,
		OnRejected: func(s auth.Service) { rejected <- s }})
	h.Invalidate(auth.ServiceMessageService, "Bearer "+first)
	select {
	case s := <-rejected:
		if s != auth.ServiceMessageService {
			t.Errorf("OnRejected(%q), want the message service", s)
		}
	case <-time.After(failsafe):
		t.Fatal("OnRejected not called")
	}
	if got := hubAuthorization(t, h, context.Background()); got != "Bearer "+second {
		t.Errorf("after the rejection the hub gets %q, want the callback's new JWT", got)
	}
}
