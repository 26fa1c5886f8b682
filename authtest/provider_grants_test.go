package authtest

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/authkit-go/authkit/internal/totp"
)

func TestPasswordGrant(t *testing.T) {
	tests := []struct {
		name          string
		form          []string
		code          string // expected error, "" for success
		desc          string
		refresh, idTk bool
	}{
		{name: "ok", form: []string{"username", "ada", "password", "lovelace"}},
		{name: "ok openid offline", form: []string{"username", "ada", "password", "lovelace", "scope", "openid offline_access"}, refresh: true, idTk: true},
		{name: "wrong password", form: []string{"username", "ada", "password", "x"}, code: "invalid_grant", desc: descInvalidCredentials},
		{name: "unknown user", form: []string{"username", "eve", "password", "lovelace"}, code: "invalid_grant", desc: descInvalidCredentials},
		{name: "no username", form: []string{"password", "lovelace"}, code: "invalid_request", desc: "missing username"},
		{name: "totp missing", form: []string{"username", "bob", "password", "builder"}, code: "invalid_grant", desc: descTOTPRequired},
		{name: "totp wrong", form: []string{"username", "bob", "password", "builder", "totp", "000000"}, code: "invalid_grant", desc: descTOTPInvalid},
		{name: "totp ok", form: []string{"username", "bob", "password", "builder", "totp", "NOW"}},
		{name: "totp previous step ok", form: []string{"username", "bob", "password", "builder", "totp", "PREV"}},
		{name: "totp two steps old", form: []string{"username", "bob", "password", "builder", "totp", "OLD"}, code: "invalid_grant", desc: descTOTPInvalid},
		{name: "totp but wrong password", form: []string{"username", "bob", "password", "x", "totp", "NOW"}, code: "invalid_grant", desc: descInvalidCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, clock := newTestProvider(t, nil)
			f := form(append([]string{"grant_type", "password", "client_id", "cli"}, tt.form...)...)
			codes := map[string]time.Duration{"NOW": 0, "PREV": -totp.Step, "OLD": -2 * totp.Step}
			if d, ok := codes[f.Get("totp")]; ok {
				c, err := totp.Code(totpSecret, clock.Now().Add(d))
				if err != nil {
					t.Fatal(err)
				}
				f.Set("totp", c)
			}
			a := post(t, p, EndpointToken, f)
			if tt.code != "" {
				wantError(t, a, 400, tt.code, tt.desc)
				return
			}
			wantTokens(t, a, tt.refresh, tt.idTk)
		})
	}
}

func TestPasswordTOTPParamName(t *testing.T) {
	p, clock := newTestProvider(t, func(c *ProviderConfig) { c.TOTPParam = "otp" })
	code, _ := totp.Code(totpSecret, clock.Now())
	a := post(t, p, EndpointToken, form("grant_type", "password", "client_id", "cli", "username", "bob", "password", "builder", "totp", code))
	wantError(t, a, 400, "invalid_grant", descTOTPRequired)
	a = post(t, p, EndpointToken, form("grant_type", "password", "client_id", "cli", "username", "bob", "password", "builder", "otp", code))
	wantTokens(t, a, false, false)
}

func TestUserTokenClaims(t *testing.T) {
	p, clock := newTestProvider(t, func(c *ProviderConfig) { c.IDTokenLifetime = time.Hour })
	a := post(t, p, EndpointToken, form("grant_type", "password", "client_id", "cli", "username", "ada", "password", "lovelace",
		"scope", "openid offline_access", "audience", "hub"))
	wantTokens(t, a, true, true)
	now := float64(clock.Now().Unix())
	at := claims(t, p, clock, a.str("access_token"))
	for k, v := range map[string]any{"sub": "ada", "preferred_username": "ada", "email": "ada@example.com", "team": "engines",
		"aud": "hub", "azp": "cli", "scope": "openid offline_access", "exp": now + 300, "iat": now, "nbf": now} {
		if at[k] != v {
			t.Errorf("access token %s = %#v, want %#v", k, at[k], v)
		}
	}
	id := claims(t, p, clock, a.str("id_token"))
	for k, v := range map[string]any{"sub": "ada", "preferred_username": "ada", "email": "ada@example.com",
		"aud": "cli", "azp": "cli", "exp": now + 3600} {
		if id[k] != v {
			t.Errorf("id token %s = %#v, want %#v", k, id[k], v)
		}
	}
	if at["jti"] == id["jti"] || at["jti"] == "" {
		t.Errorf("jti not unique: %v %v", at["jti"], id["jti"])
	}
	if a.json["refresh_expires_in"] != json.Number("1800") {
		t.Errorf("refresh_expires_in = %v", a.json["refresh_expires_in"])
	}
}

func TestAudienceSetting(t *testing.T) {
	p, clock := newTestProvider(t, func(c *ProviderConfig) { c.Audience = "platform" })
	a := post(t, p, EndpointToken, form("grant_type", "client_credentials", "client_id", "cli", "audience", "hub"))
	if aud := claims(t, p, clock, a.str("access_token"))["aud"]; aud != "platform" {
		t.Errorf("aud = %v, want the configured audience", aud)
	}
}

func TestAlwaysIssueRefreshToken(t *testing.T) {
	p, _ := newTestProvider(t, func(c *ProviderConfig) { c.AlwaysIssueRefreshToken = true })
	a := post(t, p, EndpointToken, form("grant_type", "password", "client_id", "cli", "username", "ada", "password", "lovelace"))
	wantTokens(t, a, true, false)
	// Never for client credentials.
	a = post(t, p, EndpointToken, form("grant_type", "client_credentials", "client_id", "cli", "scope", "offline_access"))
	wantTokens(t, a, false, false)
}

func refreshForm(rt string) []string {
	return []string{"grant_type", "refresh_token", "client_id", "cli", "refresh_token", rt}
}

func TestRefreshRotationAndReuse(t *testing.T) {
	p, clock := newTestProvider(t, nil)
	a := post(t, p, EndpointToken, form("grant_type", "password", "client_id", "cli", "username", "ada", "password", "lovelace", "scope", "openid offline_access"))
	rt1 := a.str("refresh_token")

	a = post(t, p, EndpointToken, form(refreshForm(rt1)...))
	wantTokens(t, a, true, true)
	rt2 := a.str("refresh_token")
	if rt2 == rt1 {
		t.Fatal("refresh token did not rotate")
	}
	if c := claims(t, p, clock, a.str("access_token")); c["sub"] != "ada" || c["scope"] != "openid offline_access" {
		t.Errorf("refreshed claims = %v", c)
	}

	// Reusing the spent rt1 revokes the chain, rt2 included.
	wantError(t, post(t, p, EndpointToken, form(refreshForm(rt1)...)), 400, "invalid_grant", descRefreshReused)
	wantError(t, post(t, p, EndpointToken, form(refreshForm(rt2)...)), 400, "invalid_grant", descSessionNotActive)
	if n := p.GrantRequests(GrantRefreshToken); n != 3 {
		t.Errorf("refresh requests = %d, want 3", n)
	}
}

func TestRefreshErrors(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(t *testing.T, p *Provider, c *Clock, rt string)
		form   func(rt string) []string
		code   string
		desc   string
		status int
	}{
		{name: "expired", setup: func(t *testing.T, p *Provider, c *Clock, rt string) { c.Advance(30 * time.Minute) },
			code: "invalid_grant", desc: descRefreshExpired},
		{name: "just before expiry", setup: func(t *testing.T, p *Provider, c *Clock, rt string) { c.Advance(30*time.Minute - time.Second) }},
		{name: "session revoked", setup: func(t *testing.T, p *Provider, c *Clock, rt string) {
			if n := p.RevokeSession("ada"); n != 1 {
				t.Fatalf("RevokeSession ended %d sessions, want 1", n)
			}
		}, code: "invalid_grant", desc: descSessionNotActive},
		{name: "other user's session revoked", setup: func(t *testing.T, p *Provider, c *Clock, rt string) { p.RevokeSession("bob") }},
		{name: "unknown", form: func(string) []string { return refreshForm("nope") }, code: "invalid_grant", desc: descRefreshInvalid},
		{name: "missing", form: func(string) []string { return []string{"grant_type", "refresh_token", "client_id", "cli"} },
			code: "invalid_request", desc: "missing refresh_token"},
		{name: "other client", form: func(rt string) []string {
			return []string{"grant_type", "refresh_token", "client_id", "post", "client_secret", "p0st", "refresh_token", rt}
		}, code: "invalid_grant", desc: descRefreshWrongClient},
		{name: "narrower scope", form: func(rt string) []string { return append(refreshForm(rt), "scope", "offline_access") }},
		{name: "wider scope", form: func(rt string) []string { return append(refreshForm(rt), "scope", "offline_access admin") },
			code: "invalid_scope"},
		{name: "revoked via endpoint", setup: func(t *testing.T, p *Provider, c *Clock, rt string) {
			post(t, p, EndpointRevoke, form("client_id", "cli", "token", rt, "token_type_hint", "refresh_token"))
		}, code: "invalid_grant", desc: descSessionNotActive},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, clock := newTestProvider(t, nil)
			rt := p.IssueRefreshToken("ada", "cli", []string{"offline_access"})
			if tt.setup != nil {
				tt.setup(t, p, clock, rt)
			}
			f := refreshForm(rt)
			if tt.form != nil {
				f = tt.form(rt)
			}
			a := post(t, p, EndpointToken, form(f...))
			if tt.code == "" {
				wantTokens(t, a, true, false)
				return
			}
			wantError(t, a, 400, tt.code, tt.desc)
		})
	}
}

func TestRevocationEndpoint(t *testing.T) {
	p, _ := newTestProvider(t, nil)
	rt := p.IssueRefreshToken("ada", "cli", nil)
	// Another client cannot revoke it; the answer is still 200.
	a := post(t, p, EndpointRevoke, form("token", rt, "client_id", "post", "client_secret", "p0st"))
	if a.status != 200 || a.raw != "" {
		t.Fatalf("revoke by another client: %d %q", a.status, a.raw)
	}
	wantTokens(t, post(t, p, EndpointToken, form(refreshForm(rt)...)), true, false)
	// Unknown tokens answer 200 (RFC 7009 §2.2).
	if a := post(t, p, EndpointRevoke, form("token", "unknown", "client_id", "cli")); a.status != 200 {
		t.Errorf("unknown token: %d", a.status)
	}
	wantError(t, post(t, p, EndpointRevoke, form("client_id", "cli")), 400, "invalid_request", "missing token")
	wantError(t, post(t, p, EndpointRevoke, form("token", "x", "client_id", "post", "client_secret", "bad")), 401, "invalid_client", descClientSecretWrong)
	if n := p.Requests(EndpointRevoke); n != 4 {
		t.Errorf("revoke requests = %d, want 4", n)
	}
}

func TestIssueAccessToken(t *testing.T) {
	p, clock := newTestProvider(t, nil)
	tok := p.IssueAccessToken("ada", "cli", []string{"read", "write"}, time.Minute)
	c := claims(t, p, clock, tok)
	if c["sub"] != "ada" || c["aud"] != "cli" || c["scope"] != "read write" || c["exp"] != float64(clock.Now().Add(time.Minute).Unix()) {
		t.Errorf("claims = %v", c)
	}
	expired := p.IssueAccessToken("ada", "cli", nil, -time.Second)
	if _, err := parseAt(p, clock, expired); err == nil {
		t.Error("a token issued with a negative lifetime verifies")
	}
	if _, err := parseAt(p, clock, p.IssueIDToken("ada", "cli")); err != nil {
		t.Errorf("id token: %v", err)
	}
	if p.Requests(EndpointToken) != 0 {
		t.Error("IssueAccessToken made a request")
	}
}

func TestTLS(t *testing.T) {
	p, _ := newTestProvider(t, func(c *ProviderConfig) { c.TLS = true })
	if p.URL()[:8] != "https://" {
		t.Fatalf("URL = %s", p.URL())
	}
	if a := get(t, p, EndpointDiscovery); a.status != 200 || a.str("token_endpoint") != p.TokenURL() {
		t.Fatalf("got %d %s", a.status, a.raw)
	}
	if _, err := http.Get(p.DiscoveryURL()); err == nil {
		t.Error("the default client trusts the test certificate")
	}
}

func parseAt(p *Provider, clock *Clock, tok string) (*jwt.Token, error) {
	return jwt.Parse(tok, p.Keyfunc, jwt.WithTimeFunc(clock.Now), jwt.WithValidMethods([]string{"RS256"}))
}

func TestRotateKey(t *testing.T) {
	p, clock := newTestProvider(t, nil)
	oldKid := p.KeyID()
	old := p.IssueAccessToken("ada", "cli", nil, 0)
	kid := p.RotateKey(nil, true)
	if kid == oldKid || p.KeyID() != kid {
		t.Fatalf("kid %q after rotation, was %q", p.KeyID(), oldKid)
	}
	a := get(t, p, EndpointKeys)
	if keys, _ := a.json["keys"].([]any); len(keys) != 2 || keys[0].(map[string]any)["kid"] != kid {
		t.Fatalf("JWKS after rotation = %s", a.raw)
	}
	fresh := p.IssueAccessToken("ada", "cli", nil, 0)
	for _, tok := range []string{old, fresh} {
		if _, err := parseAt(p, clock, tok); err != nil {
			t.Errorf("with the old key kept: %v", err)
		}
	}
	p.RotateKey(sharedKey(t), false)
	if _, err := parseAt(p, clock, fresh); err == nil {
		t.Error("a token of a dropped key verifies")
	}
	if len(p.keySet().Keys) != 1 || p.keySet().Keys[0].KeyID != oldKid {
		t.Errorf("keys = %+v", p.keySet())
	}
}

func TestAddClientAndUser(t *testing.T) {
	p, _ := newTestProvider(t, nil)
	f := form("grant_type", "password", "client_id", "new", "username", "zed", "password", "pw")
	wantError(t, post(t, p, EndpointToken, f), 401, "invalid_client", descClientUnknown)
	p.AddClient(Client{ID: "new"})
	wantError(t, post(t, p, EndpointToken, f), 400, "invalid_grant", descInvalidCredentials)
	p.AddUser(User{Username: "zed", Password: "pw"})
	wantTokens(t, post(t, p, EndpointToken, f), false, false)
}
