package handlers

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/authtest"
)

const (
	svcSecret = "svc-secret-0123456789"
	adaPass   = "ada-password-42"
	adaTOTP   = "JBSWY3DPEHPK3PXP"
)

// newProvider starts an authtest provider on clk with a public client
// "cli", a confidential client "svc" and the users ada (TOTP) and bob.
func newProvider(t *testing.T, clk *authtest.Clock, mods ...func(*authtest.ProviderConfig)) *authtest.Provider {
	t.Helper()
	cfg := authtest.ProviderConfig{
		Clients: []authtest.Client{{ID: "cli"}, {ID: "svc", Secret: svcSecret}},
		Users: []authtest.User{
			{Username: "ada", Password: adaPass, TOTPSecret: adaTOTP},
			{Username: "bob", Password: "bob-pw"},
		},
		AlwaysIssueRefreshToken: true,
	}
	if clk != nil { // nil: the system clock (a nil *Clock in the interface would not be nil)
		cfg.Clock = clk
	}
	for _, m := range mods {
		m(&cfg)
	}
	p := authtest.NewProvider(cfg)
	t.Cleanup(p.Close)
	return p
}

// sent is one request as the client sent it, stamped with the fake time.
type sent struct {
	path string
	at   time.Time
	form url.Values
	auth string
}

// recorder is an http.RoundTripper that records every request and may act
// after each answer (approve, cancel...).
type recorder struct {
	clk   *authtest.Clock
	after func(n int, s sent) // called after the n-th request's answer

	mu   sync.Mutex // guards reqs
	reqs []sent
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	form, _ := url.ParseQuery(string(body))
	s := sent{path: req.URL.Path, at: r.clk.Now(), form: form, auth: req.Header.Get("Authorization")}
	r.mu.Lock()
	r.reqs = append(r.reqs, s)
	n := len(r.reqs)
	r.mu.Unlock()
	resp, err := http.DefaultTransport.RoundTrip(req)
	if r.after != nil {
		r.after(n, s)
	}
	return resp, err
}

func (r *recorder) client() *http.Client { return &http.Client{Transport: r} }

// to returns the recorded requests to path.
func (r *recorder) to(path string) []sent {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []sent
	for _, s := range r.reqs {
		if s.path == path {
			out = append(out, s)
		}
	}
	return out
}

// driven runs f while moving the fake clock forward one second whenever a
// timer waits, so that intervals and expiries pass without real waiting. It
// stops moving the clock once a hold function reports true (e.g. the
// handler is authenticated, so that the token's own refresh timers do not
// fire).
func driven(clk *authtest.Clock, f func() error, hold ...func() bool) error {
	done := make(chan error, 1)
	go func() { done <- f() }()
	for {
		select {
		case err := <-done:
			return err
		default:
		}
		held := false
		for _, h := range hold {
			held = held || h()
		}
		if clk.Pending() > 0 && !held {
			clk.Advance(time.Second)
		} else {
			time.Sleep(20 * time.Microsecond) // let the code under test run; no interval is waited for
		}
	}
}

func TestBearerCredentialsFollowWire(t *testing.T) {
	clk := authtest.NewClock(time.Time{})
	p := newProvider(t, clk)
	tests := []struct {
		name     string
		wire     auth.Wire
		hub      string
		hubValue func(at string) string
		mdKey    string
		mdValue  func(at string) string
	}{
		{"standard", auth.Wire{}, "Authorization", func(at string) string { return "Bearer " + at }, "authorization", func(at string) string { return "Bearer " + at }},
		{"bare token metadata", auth.Wire{MessageService: auth.Field{Name: "token"}}, "Authorization", func(at string) string { return "Bearer " + at }, "token", func(at string) string { return at }},
		{"custom hub header", auth.Wire{Hub: auth.Field{Name: "X-Hub-Token"}}, "X-Hub-Token", func(at string) string { return at }, "authorization", func(at string) string { return "Bearer " + at }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := NewClientCredentials(ClientCredentialsConfig{OAuthConfig{
				Endpoints: Endpoints{TokenURL: p.TokenURL()}, ClientID: "svc", ClientSecret: auth.NewSecret(svcSecret), Clock: clk, Wire: tt.wire,
			}})
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			ctx := context.Background()
			hub, err := h.HubRequestHeaders(ctx)
			if err != nil {
				t.Fatal(err)
			}
			at := h.engine.Current().AccessToken
			if got := hub.Get(tt.hub); got != tt.hubValue(at.Reveal()) || len(hub) != 1 {
				t.Errorf("hub headers %v", hub)
			}
			am, _ := h.AccessManagerRequestHeaders(ctx)
			if got := am.Get("Authorization"); got != "Bearer "+at.Reveal() {
				t.Errorf("access manager headers %v", am)
			}
			md, _ := h.MessageServiceMetadata(ctx)
			if got := md[tt.mdKey]; got != tt.mdValue(at.Reveal()) || len(md) != 1 {
				t.Errorf("metadata %v", md)
			}
		})
	}
}

func TestConfigValidation(t *testing.T) {
	ok := OAuthConfig{Endpoints: Endpoints{TokenURL: "https://idp.example/token"}, ClientID: "svc", ClientSecret: auth.NewSecret("s")}
	tests := []struct {
		name string
		mod  func(*OAuthConfig)
	}{
		{"no client id", func(c *OAuthConfig) { c.ClientID = "" }},
		{"no endpoint", func(c *OAuthConfig) { c.TokenURL = "" }},
		{"plain http to a remote host", func(c *OAuthConfig) { c.TokenURL = "http://idp.example/token" }},
		{"relative URL", func(c *OAuthConfig) { c.TokenURL = "/token" }},
		{"basic without secret", func(c *OAuthConfig) { c.ClientSecret = auth.Secret{}; c.AuthStyle = AuthStyleBasic }},
		{"none with secret", func(c *OAuthConfig) { c.AuthStyle = AuthStyleNone }},
		{"unknown style", func(c *OAuthConfig) { c.AuthStyle = 42 }},
		{"extra overrides grant_type", func(c *OAuthConfig) { c.ExtraParams = url.Values{"grant_type": {"x"}} }},
		{"bad wire", func(c *OAuthConfig) { c.Wire.MessageService = auth.Field{Name: "Bad Key"} }},
		{"extra sets resource", func(c *OAuthConfig) { c.ExtraParams = url.Values{"resource": {"https://r/"}} }},
		{"relative resource", func(c *OAuthConfig) { c.Resources = []string{"/api"} }},
		{"resource with a fragment", func(c *OAuthConfig) { c.Resources = []string{"https://api.example/#x"} }},
		{"bad revocation URL", func(c *OAuthConfig) { c.RevocationURL = "http://idp.example/revoke" }},
		{"a DPoP key not made by NewDPoPKey", func(c *OAuthConfig) { c.DPoPKey = &auth.DPoPKey{} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mod(&c)
			_, err := NewClientCredentials(ClientCredentialsConfig{c})
			if !errors.Is(err, auth.ErrInvalidConfig) {
				t.Fatalf("err = %v", err)
			}
			// One prefix, the producing package's: not "auth: invalid
			// configuration: handlers: ..." (the wire check is auth's).
			msg := err.Error()
			if !(strings.HasPrefix(msg, "handlers: ClientCredentials: ") || strings.HasPrefix(msg, "auth: ")) ||
				strings.Contains(msg, "invalid configuration") || strings.Count(msg, "handlers: ") > 1 {
				t.Errorf("error %q, want one package prefix", msg)
			}
		})
	}
	t.Run("valid; loopback http allowed", func(t *testing.T) {
		c := ok
		c.TokenURL = "http://127.0.0.1:9/token"
		h, err := NewClientCredentials(ClientCredentialsConfig{c})
		if err != nil {
			t.Fatal(err)
		}
		h.Close()
	})
	t.Run("config prints no secret", func(t *testing.T) {
		cfg := PasswordConfig{OAuthConfig: ok, Username: "ada", Password: auth.NewSecret(adaPass), TOTPSecret: auth.NewSecret(adaTOTP)}
		for _, s := range []string{sprintf("%v", cfg), sprintf("%+v", cfg), sprintf("%#v", cfg)} {
			if strings.Contains(s, adaPass) || strings.Contains(s, adaTOTP) || !strings.Contains(s, "[redacted]") {
				t.Errorf("printed %s", s)
			}
		}
	})
}

func TestEndpointHelpers(t *testing.T) {
	tests := []struct {
		name string
		got  Endpoints
		want Endpoints
	}{
		{"keycloak", KeycloakEndpoints("https://sso.example.com/", "my realm"), Endpoints{
			Issuer:                 "https://sso.example.com/realms/my%20realm",
			AuthorizationURL:       "https://sso.example.com/realms/my%20realm/protocol/openid-connect/auth",
			TokenURL:               "https://sso.example.com/realms/my%20realm/protocol/openid-connect/token",
			DeviceAuthorizationURL: "https://sso.example.com/realms/my%20realm/protocol/openid-connect/auth/device",
			JWKSURL:                "https://sso.example.com/realms/my%20realm/protocol/openid-connect/certs",
			RevocationURL:          "https://sso.example.com/realms/my%20realm/protocol/openid-connect/revoke",
		}},
		{"auth0", Auth0Endpoints("tenant.eu.auth0.com"), Endpoints{
			Issuer:                 "https://tenant.eu.auth0.com/",
			AuthorizationURL:       "https://tenant.eu.auth0.com/authorize",
			TokenURL:               "https://tenant.eu.auth0.com/oauth/token",
			DeviceAuthorizationURL: "https://tenant.eu.auth0.com/oauth/device/code",
			JWKSURL:                "https://tenant.eu.auth0.com/.well-known/jwks.json",
			RevocationURL:          "https://tenant.eu.auth0.com/oauth/revoke",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got  %+v\nwant %+v", tt.got, tt.want)
			}
		})
	}
}

func TestDiscover(t *testing.T) {
	clk := authtest.NewClock(time.Time{})
	p := newProvider(t, clk)
	t.Run("matches and caches", func(t *testing.T) {
		c := &DiscoveryCache{Clock: clk}
		for range 3 {
			md, err := c.Discover(context.Background(), p.Issuer())
			if err != nil {
				t.Fatal(err)
			}
			if md.TokenEndpoint != p.TokenURL() || md.DeviceAuthorizationEndpoint != p.DeviceAuthorizationURL() || md.JWKSURI != p.JWKSURL() {
				t.Errorf("metadata %+v", md)
			}
		}
		if n := p.Requests(authtest.EndpointDiscovery); n != 1 {
			t.Errorf("%d discovery requests, want 1", n)
		}
		clk.Advance(2 * time.Hour)
		if _, err := c.Discover(context.Background(), p.Issuer()); err != nil {
			t.Fatal(err)
		}
		if n := p.Requests(authtest.EndpointDiscovery); n != 2 {
			t.Errorf("%d discovery requests after the TTL, want 2", n)
		}
	})
	bad := []struct {
		name   string
		status int
		body   string
		check  func(error) bool
	}{
		{"issuer mismatch", 200, `{"issuer":"https://evil.example","token_endpoint":"https://evil.example/token"}`, func(err error) bool { return errors.Is(err, ErrIssuerMismatch) }},
		{"html", 200, `<html>hi</html>`, func(err error) bool { var re *auth.ResponseError; return errors.As(err, &re) }},
		{"404", 404, `{}`, func(err error) bool { var re *auth.ResponseError; return errors.As(err, &re) && re.StatusCode == 404 }},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/.well-known/openid-configuration" {
					t.Errorf("path %s", r.URL.Path)
				}
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			_, err := Discover(context.Background(), nil, srv.URL)
			if !tt.check(err) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestMalformedProviderAnswer(t *testing.T) {
	clk := authtest.NewClock(time.Time{})
	p := newProvider(t, clk)
	tests := []struct {
		name, body, ctype, reason string
	}{
		{"html error page", "<html><h1>502 Bad Gateway</h1></html>", "text/html", "not JSON"},
		{"empty body", "", "application/json", "empty body"},
		{"expires_in abc", `{"access_token":"x","expires_in":"abc"}`, "application/json", "expires_in"},
		{"10 MB body", `{"access_token":"` + strings.Repeat("x", 10<<20) + `"}`, "application/json", "exceeds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := NewClientCredentials(ClientCredentialsConfig{OAuthConfig{
				Endpoints: Endpoints{TokenURL: p.TokenURL()}, ClientID: "svc", ClientSecret: auth.NewSecret(svcSecret), Clock: clk,
			}})
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			p.MalformNextAt(authtest.EndpointToken, 1, tt.body, tt.ctype)
			err = h.Authenticate(context.Background())
			var re *auth.ResponseError
			if !errors.As(err, &re) || !strings.Contains(re.Reason, tt.reason) {
				t.Fatalf("err = %v", err)
			}
			if strings.Contains(err.Error(), svcSecret) || len(err.Error()) > 1000 {
				t.Errorf("error too long or carries a secret: %d bytes", len(err.Error()))
			}
			if h.Authenticated() {
				t.Error("authenticated after a malformed answer")
			}
		})
	}
}

// OAuthConfig.Retry governs the requests the engine does not retry
// itself (here, revocation at Logout): NoRetry sends one, DefaultRetry (the
// default) 4 in all against a provider that keeps answering 503.
func TestRetryPolicies(t *testing.T) {
	for _, tt := range []struct {
		name  string
		retry RetryPolicy
		want  int
	}{{"NoRetry", NoRetry, 1}, {"default", nil, 4}} {
		t.Run(tt.name, func(t *testing.T) {
			clk := authtest.NewClock(time.Time{})
			p := newProvider(t, clk)
			h, err := NewClientCredentials(ClientCredentialsConfig{OAuthConfig{Endpoints: Endpoints{Issuer: p.Issuer()},
				ClientID: "svc", ClientSecret: auth.NewSecret(svcSecret), Clock: clk, Retry: tt.retry}})
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			if err := h.Authenticate(context.Background()); err != nil {
				t.Fatal(err)
			}
			p.FailNextAt(authtest.EndpointRevoke, 10, 503, "")
			err = driven(clk, func() error { return h.Logout(context.Background()) })
			if !errors.Is(err, auth.ErrNotRevoked) {
				t.Fatalf("Logout: %v", err)
			}
			if n := p.Requests(authtest.EndpointRevoke); n != tt.want {
				t.Errorf("%d revocation requests, want %d", n, tt.want)
			}
		})
	}
}
