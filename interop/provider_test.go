package interop

// The tests in this file speak raw HTTP to the providers. They pin down the
// provider behaviour that the handlers and authtest rely on, so that a
// failing handler test can be told apart from a provider that changed.

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// startDevice starts a device authorization (RFC 8628 §3.1).
func startDevice(t testing.TB, d discovery, form url.Values, basicID, basicSecret string) tokenAnswer {
	t.Helper()
	a := postForm(t, d.DeviceAuthorizationEndpoint, form, basicID, basicSecret)
	if a.Status != 200 || a.DeviceCode == "" || a.UserCode == "" || a.VerificationURI == "" {
		t.Fatalf("device authorization: HTTP %d %+v", a.Status, a)
	}
	return a
}

// pollDevice polls the token endpoint until the device code is answered,
// honouring the interval and slow_down (RFC 8628 §3.5).
func pollDevice(t testing.TB, d discovery, form url.Values, basicID, basicSecret string, interval time.Duration) tokenAnswer {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for time.Now().Before(deadline) {
		a := postForm(t, d.TokenEndpoint, form, basicID, basicSecret)
		switch a.Error {
		case "authorization_pending":
		case "slow_down":
			interval += 5 * time.Second
		default:
			return a
		}
		time.Sleep(interval)
	}
	t.Fatalf("device code not answered within %v", testTimeout)
	return tokenAnswer{}
}

func wantTokens(t testing.TB, what string, a tokenAnswer, refresh, id bool) {
	t.Helper()
	if a.Status != 200 || a.Error != "" {
		t.Fatalf("%s: HTTP %d error=%q %q", what, a.Status, a.Error, a.ErrorDescription)
	}
	if a.AccessToken == "" || !strings.EqualFold(a.TokenType, "bearer") || a.ExpiresIn <= 0 {
		t.Errorf("%s: access_token set=%v token_type=%q expires_in=%d", what, a.AccessToken != "", a.TokenType, a.ExpiresIn)
	}
	if refresh && a.RefreshToken == "" {
		t.Errorf("%s: no refresh_token", what)
	}
	if id && a.IDToken == "" {
		t.Errorf("%s: no id_token", what)
	}
}

func wantError(t testing.TB, what string, a tokenAnswer, status int, code string) {
	t.Helper()
	if a.Status != status || a.Error != code {
		t.Errorf("%s: HTTP %d error=%q (%q), want HTTP %d error=%q", what, a.Status, a.Error, a.ErrorDescription, status, code)
	}
}

func TestDexProviderPasswordAndRotation(t *testing.T) {
	d := discover(t, dexIssuer(t))
	pw := url.Values{
		"grant_type": {"password"},
		"username":   {userEmail},
		"password":   {userPassword},
		"scope":      {"openid email profile offline_access"},
	}
	a := postForm(t, d.TokenEndpoint, pw, dexConfidentialID, dexConfidentialSecret)
	wantTokens(t, "password grant", a, true, true)

	bad := url.Values{"grant_type": {"password"}, "username": {userEmail}, "password": {"wrong"}, "scope": {"openid"}}
	// Dex answers a wrong password with access_denied (HTTP 401), not the
	// invalid_grant of RFC 6749 §5.2.
	wantError(t, "wrong password", postForm(t, d.TokenEndpoint, bad, dexConfidentialID, dexConfidentialSecret), 401, "access_denied")

	rt1 := a.RefreshToken
	b := postForm(t, d.TokenEndpoint, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt1}}, dexConfidentialID, dexConfidentialSecret)
	wantTokens(t, "refresh", b, true, true)
	if b.RefreshToken == rt1 {
		t.Fatalf("refresh returned the same refresh token: reuseInterval 0s not in force")
	}
	// A spent refresh token: Dex says invalid_request (HTTP 400), not
	// invalid_grant.
	c := postForm(t, d.TokenEndpoint, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt1}}, dexConfidentialID, dexConfidentialSecret)
	wantError(t, "spent refresh token", c, 400, "invalid_request")
	// Dex does not revoke the chain on reuse: the newest refresh token
	// still works.
	e := postForm(t, d.TokenEndpoint, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {b.RefreshToken}}, dexConfidentialID, dexConfidentialSecret)
	wantTokens(t, "refresh with the newest token after a reuse", e, true, false)
}

func TestDexProviderClaims(t *testing.T) {
	d := discover(t, dexIssuer(t))
	a := dexPasswordTokens(t, d)
	// Dex's ID and access tokens: aud is the client, sub an encoded
	// (user id, connector) pair, the username is in "name", the login in
	// "email"; there is no preferred_username with the local connector.
	for name, raw := range map[string]string{"id token": a.IDToken, "access token": a.AccessToken} {
		c := jwtClaims(t, raw)
		if c["aud"] != dexConfidentialID || c["email"] != userEmail || c["name"] != userLogin ||
			c["sub"] == userLogin || c["preferred_username"] != nil {
			t.Errorf("%s claims = %v", name, c)
		}
	}
	if !strings.EqualFold(a.TokenType, "bearer") || a.TokenType == "Bearer" {
		t.Logf("token_type = %q", a.TokenType)
	}
}

func TestDexProviderDevice(t *testing.T) {
	iss := dexIssuer(t)
	d := discover(t, iss)
	tests := []struct {
		name         string
		id, secret   string
		secretInForm bool
	}{
		{"public", dexPublicID, "", false},
		{"confidential", dexConfidentialID, dexConfidentialSecret, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form := url.Values{"client_id": {tt.id}, "scope": {"openid email profile offline_access"}}
			if tt.secretInForm {
				form.Set("client_secret", tt.secret)
			}
			da := startDevice(t, d, form, "", "")
			poll := url.Values{"grant_type": {deviceCodeGrantType}, "device_code": {da.DeviceCode}, "client_id": {tt.id}}
			if tt.secretInForm {
				poll.Set("client_secret", tt.secret)
			}
			wantError(t, "before approval", postForm(t, d.TokenEndpoint, poll, "", ""), 400, "authorization_pending")
			// Polling again at once is too fast.
			wantError(t, "polled too fast", postForm(t, d.TokenEndpoint, poll, "", ""), 400, "slow_down")
			if da.VerificationURIComplete == "" {
				t.Errorf("no verification_uri_complete")
			}
			approveDex(t, iss, da.VerificationURI, da.UserCode)
			a := pollDevice(t, d, poll, "", "", time.Duration(da.Interval)*time.Second)
			wantTokens(t, "device token", a, true, true)
		})
	}
}

func TestOIDCProviderClientCredentials(t *testing.T) {
	d := discover(t, oidcIssuer(t))
	a := postForm(t, d.TokenEndpoint, url.Values{"grant_type": {"client_credentials"}, "scope": {"api:read"}}, oidcCCID, oidcCCSecret)
	wantTokens(t, "client_credentials basic", a, false, false)
	if a.Scope != "api:read" {
		t.Errorf("scope = %q, want api:read", a.Scope)
	}
	p := postForm(t, d.TokenEndpoint, url.Values{"grant_type": {"client_credentials"}, "client_id": {oidcCCPostID}, "client_secret": {oidcCCPostSecret}}, "", "")
	wantTokens(t, "client_credentials post", p, false, false)
	w := postForm(t, d.TokenEndpoint, url.Values{"grant_type": {"client_credentials"}}, oidcCCID, "wrong")
	wantError(t, "wrong secret", w, 401, "invalid_client")
	s := postForm(t, d.TokenEndpoint, url.Values{"grant_type": {"client_credentials"}, "scope": {"openid"}}, oidcCCID, oidcCCSecret)
	wantError(t, "scope not allowed", s, 400, "invalid_scope")
}

// oidcDeviceTokens runs oidc-provider's device flow with the public device
// client and returns the token answer.
func oidcDeviceTokens(t testing.TB, d discovery) tokenAnswer {
	t.Helper()
	da := startDevice(t, d, url.Values{"client_id": {oidcDevicePublicID}, "scope": {"openid profile email offline_access"}}, "", "")
	poll := url.Values{"grant_type": {deviceCodeGrantType}, "device_code": {da.DeviceCode}, "client_id": {oidcDevicePublicID}}
	wantError(t, "before approval", postForm(t, d.TokenEndpoint, poll, "", ""), 400, "authorization_pending")
	approveOIDC(t, da.VerificationURIComplete, da.UserCode)
	a := pollDevice(t, d, poll, "", "", time.Duration(da.Interval)*time.Second)
	wantTokens(t, "device token", a, true, true)
	return a
}

func TestOIDCProviderDeviceAndReuseDetection(t *testing.T) {
	d := discover(t, oidcIssuer(t))
	a := oidcDeviceTokens(t, d)

	// The ID token names the account in "sub" only; preferred_username
	// (scope profile) is served by userinfo, as OIDC Core §5.4 says for
	// flows that return an access token.
	idc := jwtClaims(t, a.IDToken)
	if idc["sub"] != userLogin || idc["preferred_username"] != nil {
		t.Errorf("ID token claims = %v, want sub %q and no preferred_username", idc, userLogin)
	}
	var ui map[string]any
	getJSONAuth(t, d.UserinfoEndpoint, a.AccessToken, &ui)
	if ui["preferred_username"] != userLogin {
		t.Errorf("userinfo = %v, want preferred_username %q", ui, userLogin)
	}

	refresh := func(rt string) tokenAnswer {
		return postForm(t, d.TokenEndpoint, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {oidcDevicePublicID}}, "", "")
	}
	rt1 := a.RefreshToken
	b := refresh(rt1)
	wantTokens(t, "refresh", b, true, false)
	if b.RefreshToken == rt1 {
		t.Fatalf("refresh token not rotated")
	}
	// Reusing the spent token is invalid_grant and revokes the grant: the
	// newest refresh token dies with it.
	wantError(t, "spent refresh token", refresh(rt1), 400, "invalid_grant")
	wantError(t, "newest refresh token after reuse", refresh(b.RefreshToken), 400, "invalid_grant")
}

// jwtClaims decodes a JWT's claims without verifying it (the handler tests
// verify; this only shows what the provider put there).
func jwtClaims(t testing.TB, raw string) map[string]any {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	mustf(t, err, "JWT payload")
	var c map[string]any
	mustf(t, json.Unmarshal(b, &c), "JWT claims")
	return c
}

// getJSONAuth GETs u with a bearer token and decodes the JSON answer.
func getJSONAuth(t testing.TB, u, token string, v any) {
	t.Helper()
	req, err := http.NewRequestWithContext(testContext(t), http.MethodGet, u, nil)
	mustf(t, err, "request")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	mustf(t, err, "GET %s", u)
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: HTTP %d", u, resp.StatusCode)
	}
	mustf(t, json.NewDecoder(resp.Body).Decode(v), "GET %s: JSON", u)
}

// TestDexProviderDeviceIgnoresBasicAuth: Dex reads client_id and
// client_secret only from the form at its device authorization endpoint.
// A request authenticated with HTTP Basic alone still gets a device code,
// for no client, and the person's approval then fails. Confidential
// clients must use client_secret_post for Dex's device flow.
func TestDexProviderDeviceIgnoresBasicAuth(t *testing.T) {
	iss := dexIssuer(t)
	d := discover(t, iss)
	da := startDevice(t, d, url.Values{"scope": {"openid"}}, dexConfidentialID, dexConfidentialSecret)
	b := newBrowser(t)
	p := b.submit(b.get(da.VerificationURI), nil, map[string]string{"user_code": da.UserCode})
	t.Logf("Dex answers the approval with HTTP %d at %s", p.Status, p.URL.Path)
	if p.Status < 400 {
		t.Errorf("approving a device code requested with HTTP Basic: HTTP %d at %s, want an error page", p.Status, p.URL.Redacted())
	}
}
