package handlers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/authtest"
)

// deviceSetup is a device-code handler against an authtest provider, with
// every request recorded.
type deviceSetup struct {
	clk     *authtest.Clock
	p       *authtest.Provider
	rec     *recorder
	h       *DeviceCode
	prompts []DevicePrompt
	mu      sync.Mutex // guards prompts
}

func newDeviceSetup(t *testing.T, mod func(*DeviceCodeConfig), pmods ...func(*authtest.ProviderConfig)) *deviceSetup {
	t.Helper()
	s := &deviceSetup{clk: authtest.NewClock(time.Time{})}
	s.p = newProvider(t, s.clk, pmods...)
	s.rec = &recorder{clk: s.clk}
	cfg := DeviceCodeConfig{
		OAuthConfig: OAuthConfig{
			Endpoints:  Endpoints{Issuer: s.p.Issuer()},
			ClientID:   "cli",
			HTTPClient: s.rec.client(),
			Clock:      s.clk,
		},
		Prompt: func(_ context.Context, dp DevicePrompt) error {
			s.mu.Lock()
			s.prompts = append(s.prompts, dp)
			s.mu.Unlock()
			return nil
		},
	}
	if mod != nil {
		mod(&cfg)
	}
	h, err := NewDeviceCode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	s.h = h
	return s
}

// pollTimes returns the fake times of the device polls, as offsets from the
// device authorization request.
func (s *deviceSetup) pollGaps() []time.Duration {
	start := s.rec.to(authtest.EndpointDeviceCode)[0].at
	var out []time.Duration
	prev := start
	for _, r := range s.rec.to(authtest.EndpointToken) {
		if r.form.Get("grant_type") != GrantTypeDeviceCode {
			continue
		}
		out = append(out, r.at.Sub(prev))
		prev = r.at
	}
	return out
}

func secs(n ...int) []time.Duration {
	out := make([]time.Duration, len(n))
	for i, v := range n {
		out[i] = time.Duration(v) * time.Second
	}
	return out
}

func TestDeviceCodeFlow(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(p *authtest.Provider)
		pcfg      func(*authtest.ProviderConfig)
		wantErr   error
		wantGaps  []time.Duration // waits before each poll
		wantPolls int
	}{
		{
			name:     "pending twice, then approved",
			setup:    func(p *authtest.Provider) { p.AutoApprove("ada", 12*time.Second) },
			wantGaps: secs(5, 5, 5),
		},
		{
			name:     "slow_down once: interval grows by 5 s",
			setup:    func(p *authtest.Provider) { p.ForceSlowDown(1); p.AutoApprove("ada", 12*time.Second) },
			wantGaps: secs(5, 10),
		},
		{
			name:     "slow_down three times: 5 s more each time",
			setup:    func(p *authtest.Provider) { p.ForceSlowDown(3); p.AutoApprove("ada", 40*time.Second) },
			wantGaps: secs(5, 10, 15, 20),
		},
		{
			name:     "interval from the provider",
			pcfg:     func(c *authtest.ProviderConfig) { c.DeviceInterval = 7 * time.Second },
			setup:    func(p *authtest.Provider) { p.AutoApprove("ada", 10*time.Second) },
			wantGaps: secs(7, 7),
		},
		{
			name: "denied",
			setup: func(p *authtest.Provider) {
				p.OnDeviceAuthorization(func(code string) { _ = p.DenyDevice(code) })
			},
			wantErr:  auth.ErrAccessDenied,
			wantGaps: secs(5),
		},
		{
			name:     "expired locally: no poll after expires_in",
			pcfg:     func(c *authtest.ProviderConfig) { c.DeviceCodeLifetime = 20 * time.Second },
			wantErr:  auth.ErrDeviceCodeExpired,
			wantGaps: secs(5, 5, 5),
		},
		{
			name:     "expired_token from the provider",
			setup:    func(p *authtest.Provider) { p.FailNextAt(authtest.EndpointToken, 1, 400, "expired_token") },
			wantErr:  auth.ErrDeviceCodeExpired,
			wantGaps: secs(5),
		},
		{
			name:     "other OAuth error is returned",
			setup:    func(p *authtest.Provider) { p.FailNextAt(authtest.EndpointToken, 1, 400, "invalid_client") },
			wantErr:  &auth.OAuthError{},
			wantGaps: secs(5),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var pm []func(*authtest.ProviderConfig)
			if tt.pcfg != nil {
				pm = append(pm, tt.pcfg)
			}
			s := newDeviceSetup(t, nil, pm...)
			if tt.setup != nil {
				tt.setup(s.p)
			}
			err := driven(s.clk, func() error { return s.h.Authenticate(context.Background()) }, s.h.Authenticated)
			switch want := tt.wantErr.(type) {
			case nil:
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				if !s.h.Authenticated() || s.h.Username() != "ada" {
					t.Errorf("authenticated %t as %q", s.h.Authenticated(), s.h.Username())
				}
			case *auth.OAuthError:
				if !errors.As(err, &want) || errors.Is(err, auth.ErrAccessDenied) {
					t.Fatalf("err = %v", err)
				}
			default:
				if !errors.Is(err, want) {
					t.Fatalf("err = %v, want %v", err, want)
				}
				if s.h.Authenticated() {
					t.Error("authenticated after a failed login")
				}
			}
			if got := s.pollGaps(); !reflect.DeepEqual(got, tt.wantGaps) {
				t.Errorf("waits before polls = %v, want %v", got, tt.wantGaps)
			}
			if n := s.p.Requests(authtest.EndpointDeviceCode); n != 1 {
				t.Errorf("%d device authorization requests, want 1", n)
			}
			if n := s.p.GrantRequests(authtest.GrantDeviceCode); n != len(tt.wantGaps) {
				t.Errorf("%d polls, want %d", n, len(tt.wantGaps))
			}
		})
	}
}

func TestDeviceCodeWireFormat(t *testing.T) {
	tests := []struct {
		name       string
		mod        func(*DeviceCodeConfig)
		wantAuth   string // the provider's view of the client authentication
		wantClient url.Values
	}{
		{"public client", func(c *DeviceCodeConfig) {}, authtest.AuthMethodNone, url.Values{"client_id": {"cli"}}},
		{"confidential, basic", func(c *DeviceCodeConfig) { c.ClientID, c.ClientSecret = "svc", auth.NewSecret(svcSecret) }, authtest.AuthMethodBasic, url.Values{}},
		{"confidential, post", func(c *DeviceCodeConfig) {
			c.ClientID, c.ClientSecret, c.AuthStyle = "svc", auth.NewSecret(svcSecret), AuthStylePost
		}, authtest.AuthMethodPost, url.Values{"client_id": {"svc"}, "client_secret": {svcSecret}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newDeviceSetup(t, func(c *DeviceCodeConfig) {
				tt.mod(c)
				c.Audiences = []string{"hub-api"}
				c.ExtraScopes = []string{"api1"}
				c.ExtraParams = url.Values{"acr_values": {"mfa"}}
			})
			s.p.AutoApprove("ada", 0)
			if err := driven(s.clk, func() error { return s.h.Authenticate(context.Background()) }, s.h.Authenticated); err != nil {
				t.Fatal(err)
			}
			client := tt.wantClient
			join := func(a, b url.Values) url.Values {
				out := url.Values{}
				for k, v := range a {
					out[k] = v
				}
				for k, v := range b {
					out[k] = v
				}
				return out
			}
			da := s.rec.to(authtest.EndpointDeviceCode)
			wantDA := join(client, url.Values{"scope": {"openid profile offline_access api1"}, "audience": {"hub-api"}, "acr_values": {"mfa"}})
			if len(da) != 1 || !reflect.DeepEqual(da[0].form, wantDA) {
				t.Errorf("device authorization form = %v, want %v", da[0].form, wantDA)
			}
			polls := s.rec.to(authtest.EndpointToken)
			dc := polls[0].form.Get("device_code")
			wantPoll := join(client, url.Values{"grant_type": {GrantTypeDeviceCode}, "device_code": {dc}})
			if dc == "" || !reflect.DeepEqual(polls[0].form, wantPoll) {
				t.Errorf("poll form = %v, want %v", polls[0].form, wantPoll)
			}
			if (tt.wantAuth == authtest.AuthMethodBasic) != strings.HasPrefix(polls[0].auth, "Basic ") {
				t.Errorf("Authorization header %q", polls[0].auth)
			}
			if got := s.p.LastRequest(authtest.EndpointToken).AuthMethod; got != tt.wantAuth {
				t.Errorf("auth method %q, want %q", got, tt.wantAuth)
			}
		})
	}
}

func TestDeviceCodeServerErrorDuringPollingKeepsDeviceCode(t *testing.T) {
	s := newDeviceSetup(t, nil)
	s.p.AutoApprove("ada", 0)
	s.p.FailNextAt(authtest.EndpointToken, 1, 503, "")
	if err := driven(s.clk, func() error { return s.h.Authenticate(context.Background()) }, s.h.Authenticated); err != nil {
		t.Fatal(err)
	}
	polls := s.rec.to(authtest.EndpointToken)
	if len(polls) != 2 {
		t.Fatalf("%d token requests, want 2 (one 503, one retry)", len(polls))
	}
	if polls[0].form.Get("device_code") == "" || polls[0].form.Get("device_code") != polls[1].form.Get("device_code") {
		t.Error("the retry did not carry the same device code")
	}
	if n := s.p.Requests(authtest.EndpointDeviceCode); n != 1 {
		t.Errorf("%d device authorization requests, want 1", n)
	}
}

func TestDeviceCodeCancelMidPoll(t *testing.T) {
	s := newDeviceSetup(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s.rec.after = func(n int, r sent) {
		if r.form.Get("grant_type") == GrantTypeDeviceCode {
			cancel() // the user pressed ^C after the first pending poll
		}
	}
	start := time.Now()
	err := driven(s.clk, func() error { return s.h.Authenticate(ctx) }, s.h.Authenticated)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
	if n := s.p.GrantRequests(authtest.GrantDeviceCode); n != 1 {
		t.Errorf("%d polls, want 1", n)
	}
	if n := s.clk.Pending(); n != 0 {
		t.Errorf("%d timers left behind", n)
	}
}

func TestDeviceCodePromptGetsCodes(t *testing.T) {
	s := newDeviceSetup(t, nil)
	var userCode string
	s.p.OnDeviceAuthorization(func(code string) { userCode = code; _ = s.p.ApproveDevice(code, "ada") })
	if err := driven(s.clk, func() error { return s.h.Authenticate(context.Background()) }, s.h.Authenticated); err != nil {
		t.Fatal(err)
	}
	if len(s.prompts) != 1 {
		t.Fatalf("%d prompts", len(s.prompts))
	}
	p := s.prompts[0]
	if p.UserCode != userCode || p.VerificationURI != s.p.VerificationURL() || !strings.Contains(p.VerificationURIComplete, userCode) ||
		p.ExpiresIn != authtest.DefaultDeviceCodeLifetime || !p.Expiry.Equal(s.rec.to(authtest.EndpointDeviceCode)[0].at.Add(p.ExpiresIn)) {
		t.Errorf("prompt %+v", p)
	}
}

func TestDefaultPrompt(t *testing.T) {
	tests := []struct {
		name     string
		complete string
		open     bool
		wantOpen string
	}{
		{"no browser", "https://idp.example/device?user_code=ABCD-EFGH", false, ""},
		{"browser opens the complete URI", "https://idp.example/device?user_code=ABCD-EFGH", true, "https://idp.example/device?user_code=ABCD-EFGH"},
		{"browser opens the plain URI", "", true, "https://idp.example/device"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			var opened string
			var open func(string) error
			if tt.open {
				open = func(u string) error { opened = u; return nil }
			}
			err := DefaultPrompt(&buf, open)(context.Background(), DevicePrompt{
				VerificationURI: "https://idp.example/device", VerificationURIComplete: tt.complete,
				UserCode: "ABCD-EFGH", ExpiresIn: 10 * time.Minute,
			})
			if err != nil {
				t.Fatal(err)
			}
			out := buf.String()
			if !strings.Contains(out, "Your confirmation code is ABCD-EFGH") || !strings.Contains(out, "https://idp.example/device") || !strings.Contains(out, "10m0s") {
				t.Errorf("prompt text %q", out)
			}
			if opened != tt.wantOpen {
				t.Errorf("opened %q, want %q", opened, tt.wantOpen)
			}
		})
	}
}

func TestDeviceCodeGettersNeverPromptByDefault(t *testing.T) {
	s := newDeviceSetup(t, nil)
	_, err := s.h.HubRequestHeaders(context.Background())
	if !errors.Is(err, auth.ErrLoginRequired) {
		t.Fatalf("err = %v", err)
	}
	if _, err := s.h.MessageServiceMetadata(context.Background()); !errors.Is(err, auth.ErrLoginRequired) {
		t.Fatalf("err = %v", err)
	}
	if n := s.p.Requests(authtest.EndpointDeviceCode); n != 0 || len(s.prompts) != 0 {
		t.Errorf("%d device authorizations, %d prompts", n, len(s.prompts))
	}
}

// TestDeviceCodeLoginOnDemand: with LoginOnDemand, every way of asking
// for credentials runs the login — the getters and the per-request
// RequestHeaders and RequestMetadata, which the session and grpcauth call.
func TestDeviceCodeLoginOnDemand(t *testing.T) {
	target, _ := url.Parse("https://hub.example/api")
	for name, get := range map[string]func(*DeviceCode) (string, error){
		"HubRequestHeaders": func(h *DeviceCode) (string, error) {
			v, err := h.HubRequestHeaders(context.Background())
			return v.Get("Authorization"), err
		},
		"RequestHeaders": func(h *DeviceCode) (string, error) {
			v, err := h.RequestHeaders(context.Background(), auth.ServiceAccessManager, http.MethodGet, target, "")
			return v.Get("Authorization"), err
		},
		"RequestMetadata": func(h *DeviceCode) (string, error) {
			v, err := h.RequestMetadata(context.Background(), "https://messages.example/pkg.Svc", "/pkg.Svc/Get", "")
			return v["authorization"], err
		},
	} {
		t.Run(name, func(t *testing.T) {
			s := newDeviceSetup(t, func(c *DeviceCodeConfig) { c.LoginOnDemand = true })
			s.p.AutoApprove("ada", 0)
			var got string
			err := driven(s.clk, func() error {
				v, err := get(s.h)
				got = v
				return err
			}, s.h.Authenticated)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(got, "Bearer ") || len(s.prompts) != 1 {
				t.Errorf("credential %.12q… after %d prompts", got, len(s.prompts))
			}
		})
	}
}

func TestDeviceCodeRefreshBeforeLogin(t *testing.T) {
	tests := []struct {
		name        string
		reject      bool
		wantPrompts int
		wantRefresh int
	}{
		{"stored refresh token used silently", false, 0, 1},
		{"rejected refresh token falls back to the device login", true, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &auth.MemoryStore{}
			s := newDeviceSetup(t, func(c *DeviceCodeConfig) { c.Store = store })
			key := s.h.core.storeKey("")
			rt := s.p.IssueRefreshToken("ada", "cli", []string{"openid", "profile", "offline_access"})
			if tt.reject {
				rt = "spent-or-unknown-refresh-token"
			}
			expired := &auth.Token{AccessToken: auth.NewSecret("old"), RefreshToken: auth.NewSecret(rt), Expiry: s.clk.Now().Add(-time.Minute)}
			if err := store.Save(context.Background(), key, expired); err != nil {
				t.Fatal(err)
			}
			s.p.AutoApprove("ada", 0)
			if err := driven(s.clk, func() error { return s.h.Authenticate(context.Background()) }, s.h.Authenticated); err != nil {
				t.Fatal(err)
			}
			if len(s.prompts) != tt.wantPrompts {
				t.Errorf("%d prompts, want %d", len(s.prompts), tt.wantPrompts)
			}
			if n := s.p.GrantRequests(authtest.GrantRefreshToken); n != tt.wantRefresh {
				t.Errorf("%d refreshes, want %d", n, tt.wantRefresh)
			}
			saved, _ := store.Load(context.Background(), key)
			if saved == nil || saved.AccessToken.Reveal() != s.h.engine.Current().AccessToken.Reveal() || saved.RefreshToken.Reveal() == rt {
				t.Errorf("store holds %v, want the new token with a rotated refresh token", saved)
			}
			if s.h.Username() != "ada" {
				t.Errorf("username %q", s.h.Username())
			}
		})
	}
}

func TestDeviceCodeRotationPersisted(t *testing.T) {
	tests := []struct {
		name       string
		omit       bool
		wantRotate bool
	}{
		{"rotated refresh token saved", false, true},
		{"refresh answer without refresh_token keeps the old one", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &auth.MemoryStore{}
			s := newDeviceSetup(t, func(c *DeviceCodeConfig) { c.Store = store })
			s.p.AutoApprove("ada", 0)
			ctx := context.Background()
			if err := driven(s.clk, func() error { return s.h.Authenticate(ctx) }, s.h.Authenticated); err != nil {
				t.Fatal(err)
			}
			first := s.h.engine.Current()
			s.p.OmitRefreshToken(tt.omit)
			// A service rejected the token: the next use refreshes. (Moving the
			// fake clock past the refresh point instead races with the engine's
			// store reload; see the report on auth.Engine.)
			s.h.Invalidate(auth.ServiceHub, "")
			if err := s.h.Authenticate(ctx); err != nil {
				t.Fatal(err)
			}
			now := s.h.engine.Current()
			if now.AccessToken.Reveal() == first.AccessToken.Reveal() {
				t.Fatal("not refreshed")
			}
			if rotated := now.RefreshToken.Reveal() != first.RefreshToken.Reveal(); rotated != tt.wantRotate || now.RefreshToken.Reveal() == "" {
				t.Errorf("refresh token rotated = %t, want %t", rotated, tt.wantRotate)
			}
			saved, _ := store.Load(ctx, s.h.core.storeKey(""))
			if saved == nil || saved.RefreshToken.Reveal() != now.RefreshToken.Reveal() {
				t.Errorf("store holds %v", saved)
			}
			if n := s.p.GrantRequests(authtest.GrantRefreshToken); n != 1 {
				t.Errorf("%d refreshes, want 1", n)
			}
		})
	}
}

func TestDeviceCodeUsernameMismatch(t *testing.T) {
	store := &auth.MemoryStore{}
	s := newDeviceSetup(t, func(c *DeviceCodeConfig) { c.Store = store; c.Username = "ada" })
	key := s.h.core.storeKey("ada")
	adas := &auth.Token{AccessToken: auth.NewSecret("ada-old"), RefreshToken: auth.NewSecret("ada-refresh-unknown-to-provider"), Expiry: s.clk.Now().Add(-time.Minute)}
	ctx := context.Background()
	if err := store.Save(ctx, key, adas); err != nil {
		t.Fatal(err)
	}
	s.p.AutoApprove("bob", 0)
	err := driven(s.clk, func() error { return s.h.Authenticate(ctx) }, s.h.Authenticated)
	if !errors.Is(err, auth.ErrUserMismatch) {
		t.Fatalf("err = %v", err)
	}
	if s.h.Authenticated() {
		t.Error("authenticated as the wrong user")
	}
	saved, _ := store.Load(ctx, key)
	if !reflect.DeepEqual(saved, adas) {
		t.Errorf("ada's stored token changed: %v", saved)
	}
}

// TestDeviceCodePromptDone: the prompt's Done channel is open while the
// person may still approve, and closed once the login ended, whether it
// succeeded or was cancelled, so that a countdown can stop.
func TestDeviceCodePromptDone(t *testing.T) {
	for _, cancelled := range []bool{false, true} {
		t.Run(fmt.Sprintf("cancelled=%v", cancelled), func(t *testing.T) {
			s := newDeviceSetup(t, nil)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			openDuringLogin := make(chan bool, 1)
			var once sync.Once
			s.rec.after = func(n int, r sent) {
				if r.form.Get("grant_type") != GrantTypeDeviceCode {
					return
				}
				first := false
				once.Do(func() { first = true })
				if !first {
					return
				}
				s.mu.Lock()
				done, code := s.prompts[0].Done, s.prompts[0].UserCode
				s.mu.Unlock()
				select {
				case <-done:
					openDuringLogin <- false
				default:
					openDuringLogin <- true
				}
				if cancelled {
					cancel()
				} else {
					_ = s.p.ApproveDevice(code, "ada")
				}
			}
			err := driven(s.clk, func() error { return s.h.Authenticate(ctx) }, s.h.Authenticated)
			if cancelled != (err != nil) {
				t.Fatalf("err = %v", err)
			}
			if !<-openDuringLogin {
				t.Error("Done was closed while the login was waiting for approval")
			}
			select {
			case <-s.prompts[0].Done:
			default:
				t.Error("Done still open after the login ended")
			}
		})
	}
}

// TestDeviceCodePanickingPromptDoesNotWedgeLogins: a Prompt that panics
// (recovered by the caller, as net/http recovers a handler's) ends that
// login; the next Authenticate runs a login of its own rather than wait
// for the one that never finished.
func TestDeviceCodePanickingPromptDoesNotWedgeLogins(t *testing.T) {
	var prompts atomic.Int32
	s := newDeviceSetup(t, func(c *DeviceCodeConfig) {
		c.Prompt = func(context.Context, DevicePrompt) error {
			if prompts.Add(1) == 1 {
				panic("prompt failed")
			}
			return errors.New("no one to show the code to")
		}
	})
	func() {
		defer func() {
			if r := recover(); r != "prompt failed" {
				t.Fatalf("recovered %v, want the prompt's panic", r)
			}
		}()
		_ = s.h.Authenticate(context.Background())
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := s.h.Authenticate(ctx)
	if errors.Is(err, context.DeadlineExceeded) || err == nil || !strings.Contains(err.Error(), "no one to show the code to") {
		t.Fatalf("Authenticate after a panicked login = %v, want the second prompt's error", err)
	}
	if n := prompts.Load(); n != 2 {
		t.Errorf("%d prompts, want 2", n)
	}
}
