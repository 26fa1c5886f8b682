package authtest

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var (
	keyOnce sync.Once
	testKey *rsa.PrivateKey
)

// sharedKey saves generating an RSA key per test.
func sharedKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	keyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		testKey = k
	})
	return testKey
}

const totpSecret = "JBSWY3DPEHPK3PXP"

// newTestProvider starts a provider with a fake clock, a public client
// "cli", confidential clients "basic" (basic only), "post" (post only),
// "both", and users "ada" (with email) and "bob" (with TOTP).
func newTestProvider(t *testing.T, edit func(*ProviderConfig)) (*Provider, *Clock) {
	t.Helper()
	clock := NewClock(time.Time{})
	cfg := ProviderConfig{
		Clock: clock,
		Key:   sharedKey(t),
		Clients: []Client{
			{ID: "cli"},
			{ID: "basic", Secret: "s3cret:/+", AuthMethods: []string{AuthMethodBasic}},
			{ID: "post", Secret: "p0st", AuthMethods: []string{AuthMethodPost}},
			{ID: "both", Secret: "b0th"},
			{ID: "cc-only", Secret: "x", Grants: []string{GrantClientCredentials}},
		},
		Users: []User{
			{Username: "ada", Password: "lovelace", Email: "ada@example.com", Claims: map[string]any{"team": "engines"}},
			{Username: "bob", Password: "builder", TOTPSecret: totpSecret},
		},
	}
	if edit != nil {
		edit(&cfg)
	}
	p := NewProvider(cfg)
	t.Cleanup(p.Close)
	return p, clock
}

// answer is a decoded HTTP answer.
type answer struct {
	status int
	header http.Header
	raw    string
	json   map[string]any
}

func (a answer) str(k string) string { s, _ := a.json[k].(string); return s }

type reqOpt func(*http.Request)

func withBasic(id, secret string) reqOpt {
	return func(r *http.Request) { r.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret)) }
}

func post(t *testing.T, p *Provider, path string, form url.Values, opts ...reqOpt) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, p.URL()+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, o := range opts {
		o(req)
	}
	return do(t, p, req)
}

func get(t *testing.T, p *Provider, path string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, p.URL()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, p, req)
}

func do(t *testing.T, p *Provider, req *http.Request) answer {
	t.Helper()
	resp, err := p.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(b)}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		if err := d.Decode(&a.json); err != nil {
			t.Fatalf("answer is not JSON: %v: %q", err, b)
		}
	}
	return a
}

func form(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v
}

// wantError asserts an RFC 6749 §5.2 error answer.
func wantError(t *testing.T, a answer, status int, code, desc string) {
	t.Helper()
	if a.status != status || a.str("error") != code || (desc != "" && a.str("error_description") != desc) {
		t.Fatalf("got %d %s, want %d error=%q description=%q", a.status, a.raw, status, code, desc)
	}
}

// wantTokens asserts the exact shape of a token answer: names and JSON types.
func wantTokens(t *testing.T, a answer, refresh, id bool) {
	t.Helper()
	if a.status != http.StatusOK {
		t.Fatalf("status %d: %s", a.status, a.raw)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if cc := a.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q", cc)
	}
	if a.json["token_type"] != "Bearer" {
		t.Errorf("token_type = %#v", a.json["token_type"])
	}
	if _, ok := a.json["access_token"].(string); !ok {
		t.Errorf("access_token = %#v", a.json["access_token"])
	}
	if n, ok := a.json["expires_in"].(json.Number); !ok || strings.Contains(string(n), ".") {
		t.Errorf("expires_in = %#v, want an integer", a.json["expires_in"])
	}
	_, hasRefresh := a.json["refresh_token"].(string)
	_, hasRefreshExp := a.json["refresh_expires_in"].(json.Number)
	if hasRefresh != refresh || hasRefreshExp != refresh {
		t.Errorf("refresh_token present=%v refresh_expires_in present=%v, want %v: %s", hasRefresh, hasRefreshExp, refresh, a.raw)
	}
	if _, hasID := a.json["id_token"].(string); hasID != id {
		t.Errorf("id_token present = %v, want %v", hasID, id)
	}
	allowed := map[string]bool{"access_token": true, "token_type": true, "expires_in": true, "refresh_token": true,
		"refresh_expires_in": true, "id_token": true, "scope": true}
	for k := range a.json {
		if !allowed[k] {
			t.Errorf("unexpected field %q", k)
		}
	}
}

// claims verifies a JWT with the provider's public key at the fake time.
func claims(t *testing.T, p *Provider, clock *Clock, tok string) jwt.MapClaims {
	t.Helper()
	c := jwt.MapClaims{}
	parsed, err := jwt.ParseWithClaims(tok, c, func(tk *jwt.Token) (any, error) { return p.PublicKey(), nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithTimeFunc(clock.Now), jwt.WithIssuer(p.Issuer()))
	if err != nil {
		t.Fatalf("token does not verify: %v", err)
	}
	if parsed.Header["kid"] != p.KeyID() || p.KeyID() == "" {
		t.Errorf("kid = %v, want %q", parsed.Header["kid"], p.KeyID())
	}
	return c
}

func TestDiscovery(t *testing.T) {
	p, _ := newTestProvider(t, nil)
	a := get(t, p, EndpointDiscovery)
	if a.status != 200 {
		t.Fatalf("status %d", a.status)
	}
	want := map[string]string{
		"issuer":                        p.URL(),
		"token_endpoint":                p.URL() + "/token",
		"device_authorization_endpoint": p.URL() + "/device/code",
		"jwks_uri":                      p.URL() + "/keys",
		"revocation_endpoint":           p.URL() + "/revoke",
		"authorization_endpoint":        p.URL() + "/authorize",
	}
	for k, v := range want {
		if a.str(k) != v {
			t.Errorf("%s = %q, want %q", k, a.str(k), v)
		}
	}
	lists := map[string][]string{
		"grant_types_supported":                 {"authorization_code", GrantDeviceCode, "client_credentials", "password", "refresh_token"},
		"code_challenge_methods_supported":      {"S256"},
		"token_endpoint_auth_methods_supported": {"client_secret_basic", "client_secret_post", "none"},
		"id_token_signing_alg_values_supported": {"RS256"},
	}
	for k, v := range lists {
		got, _ := a.json[k].([]any)
		if len(got) != len(v) {
			t.Errorf("%s = %v, want %v", k, got, v)
			continue
		}
		for i := range v {
			if got[i] != v[i] {
				t.Errorf("%s = %v, want %v", k, got, v)
			}
		}
	}
}

func TestKeys(t *testing.T) {
	p, _ := newTestProvider(t, nil)
	a := get(t, p, EndpointKeys)
	keys, _ := a.json["keys"].([]any)
	if a.status != 200 || len(keys) != 1 {
		t.Fatalf("got %d %s", a.status, a.raw)
	}
	k := keys[0].(map[string]any)
	for f, v := range map[string]string{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": p.KeyID(), "e": "AQAB"} {
		if k[f] != v {
			t.Errorf("%s = %v, want %q", f, k[f], v)
		}
	}
	if n, _ := k["n"].(string); len(n) != 342 { // 256 bytes, base64url without padding
		t.Errorf("n has %d characters, want 342", len(n))
	}
}

func TestClientCredentials(t *testing.T) {
	p, clock := newTestProvider(t, nil)
	a := post(t, p, EndpointToken, form("grant_type", "client_credentials", "scope", "read  write"), withBasic("basic", "s3cret:/+"))
	wantTokens(t, a, false, false)
	if a.json["expires_in"] != json.Number("300") || a.str("scope") != "read write" {
		t.Errorf("expires_in=%v scope=%q", a.json["expires_in"], a.str("scope"))
	}
	c := claims(t, p, clock, a.str("access_token"))
	now := clock.Now().Unix()
	for k, v := range map[string]any{"sub": "service-account-basic", "aud": "basic", "azp": "basic", "scope": "read write",
		"preferred_username": "service-account-basic", "iat": float64(now), "nbf": float64(now), "exp": float64(now + 300)} {
		if c[k] != v {
			t.Errorf("claim %s = %#v, want %#v", k, c[k], v)
		}
	}
	if jti, _ := c["jti"].(string); jti == "" {
		t.Error("no jti")
	}
	if p.GrantRequests(GrantClientCredentials) != 1 || p.Requests(EndpointToken) != 1 {
		t.Errorf("counts = %+v", p.Counts())
	}
}

func TestClientAuthentication(t *testing.T) {
	cc := form("grant_type", "client_credentials")
	with := func(kv ...string) url.Values {
		v := form(kv...)
		v.Set("grant_type", "client_credentials")
		return v
	}
	tests := []struct {
		name      string
		form      url.Values
		opts      []reqOpt
		status    int
		code      string
		desc      string
		wwwAuth   bool
		wantRecAM string
	}{
		{"basic ok", cc, []reqOpt{withBasic("basic", "s3cret:/+")}, 200, "", "", false, AuthMethodBasic},
		{"basic wrong secret", cc, []reqOpt{withBasic("basic", "nope")}, 401, "invalid_client", descClientSecretWrong, true, AuthMethodBasic},
		{"basic unknown client", cc, []reqOpt{withBasic("who", "x")}, 401, "invalid_client", descClientUnknown, true, AuthMethodBasic},
		{"basic-only client uses post", with("client_id", "basic", "client_secret", "s3cret:/+"), nil, 401, "invalid_client", descClientMethod, false, AuthMethodPost},
		{"post ok", with("client_id", "post", "client_secret", "p0st"), nil, 200, "", "", false, AuthMethodPost},
		{"post wrong secret", with("client_id", "post", "client_secret", "x"), nil, 401, "invalid_client", descClientSecretWrong, false, AuthMethodPost},
		{"post-only client uses basic", cc, []reqOpt{withBasic("post", "p0st")}, 401, "invalid_client", descClientMethod, true, AuthMethodBasic},
		{"both methods at once", with("client_id", "both", "client_secret", "b0th"), []reqOpt{withBasic("both", "b0th")}, 401, "invalid_client", descClientTwoMethods, true, "basic+post"},
		{"either: basic", cc, []reqOpt{withBasic("both", "b0th")}, 200, "", "", false, AuthMethodBasic},
		{"either: post", with("client_id", "both", "client_secret", "b0th"), nil, 200, "", "", false, AuthMethodPost},
		{"confidential without secret", with("client_id", "both"), nil, 401, "invalid_client", descClientAuthRequired, true, AuthMethodNone},
		{"public ok", with("client_id", "cli"), nil, 200, "", "", false, AuthMethodNone},
		{"public with a secret", with("client_id", "cli", "client_secret", "x"), nil, 401, "invalid_client", descClientMethod, false, AuthMethodPost},
		{"no client at all", cc, nil, 401, "invalid_client", "missing client_id", false, AuthMethodNone},
		{"basic id differs from form id", with("client_id", "post"), []reqOpt{withBasic("both", "b0th")}, 401, "invalid_client", "", true, AuthMethodBasic},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _ := newTestProvider(t, nil)
			a := post(t, p, EndpointToken, tt.form, tt.opts...)
			if tt.status == 200 {
				wantTokens(t, a, false, false)
			} else {
				wantError(t, a, tt.status, tt.code, tt.desc)
			}
			if got := a.header.Get("WWW-Authenticate") != ""; got != tt.wwwAuth {
				t.Errorf("WWW-Authenticate present = %v, want %v", got, tt.wwwAuth)
			}
			if rec := p.LastRequest(EndpointToken); rec == nil || rec.AuthMethod != tt.wantRecAM {
				t.Errorf("recorded auth method = %v, want %q", rec, tt.wantRecAM)
			}
		})
	}
}

func TestTokenEndpointErrors(t *testing.T) {
	p, _ := newTestProvider(t, nil)
	a := post(t, p, EndpointToken, form("client_id", "cli"))
	wantError(t, a, 400, "invalid_request", "missing grant_type")
	a = post(t, p, EndpointToken, form("client_id", "cli", "grant_type", "implicit"))
	wantError(t, a, 400, "unsupported_grant_type", "")
	a = post(t, p, EndpointToken, form("client_id", "cc-only", "client_secret", "x", "grant_type", "password", "username", "ada", "password", "lovelace"))
	wantError(t, a, 400, "unauthorized_client", "")
	a = get(t, p, EndpointToken)
	wantError(t, a, 405, "invalid_request", "")
	req, _ := http.NewRequest(http.MethodPost, p.TokenURL(), strings.NewReader(`{"grant_type":"client_credentials"}`))
	req.Header.Set("Content-Type", "application/json")
	wantError(t, do(t, p, req), 400, "invalid_request", "")
}
