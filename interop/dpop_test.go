package interop

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/handlers"
	"github.com/authkit-go/authkit/session"
)

// dpopHeaders returns h's hub headers for a GET of target, which must be
// "Authorization: DPoP <token>" with a proof.
func dpopHeaders(t *testing.T, h auth.RequestAuthenticator, target string) (token string) {
	t.Helper()
	u, _ := url.Parse(target)
	hdr, err := h.RequestHeaders(testContext(t), auth.ServiceHub, http.MethodGet, u, "")
	mustf(t, err, "RequestHeaders")
	tok, ok := strings.CutPrefix(hdr.Get("Authorization"), "DPoP ")
	if !ok || tok == "" || hdr.Get("DPoP") == "" {
		t.Fatalf("headers %q, DPoP proof %t: want Authorization: DPoP <token> and a proof", redact(hdr.Get("Authorization")), hdr.Get("DPoP") != "")
	}
	return tok
}

// TestOIDCDPoPClientCredentials: at oidc-provider with DPoP and nonces
// required, a client credentials handler with DPoP is answered
// use_dpop_nonce once, retries with the nonce, and gets a DPoP token
// bound to its key (introspection's cnf.jkt).
func TestOIDCDPoPClientCredentials(t *testing.T) {
	t.Parallel()
	iss := oidcIssuer(t)
	d := discover(t, iss)
	rec := newRecorder(d.TokenEndpoint)
	h, err := handlers.NewClientCredentials(handlers.ClientCredentialsConfig{OAuthConfig: handlers.OAuthConfig{
		Endpoints: handlers.Endpoints{Issuer: iss}, ClientID: oidcCCID, ClientSecret: auth.NewSecret(oidcCCSecret),
		Scopes: []string{"api:read"}, HTTPClient: rec.client(), DPoP: true,
	}})
	mustf(t, err, "NewClientCredentials")
	t.Cleanup(func() { _ = h.Close() })
	mustf(t, h.Authenticate(testContext(t)), "Authenticate (exchanges %v)", rec.exchanges())
	if x := rec.exchanges(); len(x) != 2 || x[0].Error != "use_dpop_nonce" || x[1].Status != 200 {
		t.Errorf("exchanges %v, want use_dpop_nonce then 200", x)
	}
	tok, err := h.Token(testContext(t))
	mustf(t, err, "Token")
	if tok.TokenType != "DPoP" {
		t.Errorf("token_type %q, want DPoP", tok.TokenType)
	}
	at := dpopHeaders(t, h, iss+"/me")
	in := introspect(t, iss, at, oidcCCID, oidcCCSecret)
	cnf, _ := in["cnf"].(map[string]any)
	if in["active"] != true || cnf["jkt"] != tok.DPoPKey.Thumbprint() {
		t.Errorf("introspection %v, want active and cnf.jkt %s", in, tok.DPoPKey.Thumbprint())
	}
}

// TestOIDCDPoPDeviceLogin: a device login with DPoP at oidc-provider; a
// session reads userinfo with the DPoP-bound token, answering the
// resource's use_dpop_nonce by replaying once; a refresh spends the bound
// refresh token with a proof of the same key; the refresh token without
// a proof is refused.
func TestOIDCDPoPDeviceLogin(t *testing.T) {
	t.Parallel()
	iss := oidcIssuer(t)
	d := discover(t, iss)
	rec := newRecorder(d.TokenEndpoint)
	h, _ := newOIDCDevice(t, iss, oidcDevicePublicID, "", userLogin, rec, func(c *handlers.DeviceCodeConfig) { c.DPoP = true })
	ctx := testContext(t)
	mustf(t, h.Authenticate(ctx), "Authenticate (exchanges %v)", rec.exchanges())
	first, err := h.Token(ctx)
	mustf(t, err, "Token")
	if first.TokenType != "DPoP" {
		t.Fatalf("token_type %q, want DPoP", first.TokenType)
	}

	s, err := session.New(h, session.Config{HubURL: iss})
	mustf(t, err, "session.New")
	t.Cleanup(func() { _ = s.Close() })
	userinfo := func() map[string]any {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, iss+"/me", nil)
		resp, err := s.Do(req)
		mustf(t, err, "GET userinfo")
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		if resp.StatusCode != 200 {
			t.Fatalf("userinfo: HTTP %d %v (WWW-Authenticate %q)", resp.StatusCode, out, resp.Header.Get("WWW-Authenticate"))
		}
		return out
	}
	if me := userinfo(); me["sub"] != userLogin {
		t.Errorf("userinfo %v", me)
	}
	if st := s.Stats(); st.Attempts != 2 || st.Reauthentications != 0 {
		t.Errorf("session %+v: want the nonce challenge answered by one replay, no re-authentication", st)
	}

	h.Invalidate(auth.ServiceHub, "DPoP "+first.AccessToken.Reveal())
	second := dpopHeaders(t, h, iss+"/me")
	now, _ := h.Token(ctx)
	if second == first.AccessToken.Reveal() || now.DPoPKey.Thumbprint() != first.DPoPKey.Thumbprint() {
		t.Fatalf("the refresh gave a new token %t, with the same key %t", second != first.AccessToken.Reveal(), now.DPoPKey.Thumbprint() == first.DPoPKey.Thumbprint())
	}
	if me := userinfo(); me["sub"] != userLogin {
		t.Errorf("userinfo after the refresh %v", me)
	}

	// A copy of the current refresh token without the key is worthless.
	stolen := postForm(t, d.TokenEndpoint, url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {currentRefresh(t, h)}, "client_id": {oidcDevicePublicID},
	}, "", "")
	if stolen.Status != 400 || stolen.AccessToken != "" {
		t.Errorf("the bound refresh token without a proof: HTTP %d %q, want 400", stolen.Status, stolen.Error)
	}
}
