package interop

import (
	"errors"
	"net/url"
	"path/filepath"
	"testing"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/handlers"
)

// TestOIDCLogoutRevokes: after Logout, oidc-provider refuses the refresh
// token and its introspection calls both tokens inactive; a new handler on
// the same store finds no login.
func TestOIDCLogoutRevokes(t *testing.T) {
	t.Parallel()
	iss := oidcIssuer(t)
	d := discover(t, iss)
	h, _ := newOIDCDevice(t, iss, oidcDeviceID, oidcDeviceSecret, userLogin, newRecorder(d.TokenEndpoint))
	mustf(t, h.Authenticate(testContext(t)), "Authenticate")
	tok, err := h.Token(testContext(t))
	mustf(t, err, "Token")

	mustf(t, h.Logout(testContext(t)), "Logout")
	if h.Authenticated() {
		t.Error("still authenticated after Logout")
	}
	a := postForm(t, d.TokenEndpoint, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken.Reveal()}},
		oidcDeviceID, oidcDeviceSecret)
	wantError(t, "the refresh token after Logout", a, 400, "invalid_grant")
	for name, v := range map[string]string{"refresh token": tok.RefreshToken.Reveal(), "access token": tok.AccessToken.Reveal()} {
		if in := introspect(t, iss, v, oidcCCID, oidcCCSecret); in["active"] != false {
			t.Errorf("%s after Logout: introspection = %v, want inactive", name, in)
		}
	}
}

// TestDexLogoutIsLocal: Dex announces no revocation endpoint (it has no
// RFC 7009 support), so Logout removes the login here and says, with
// auth.ErrNotRevoked, that Dex may still accept the tokens.
func TestDexLogoutIsLocal(t *testing.T) {
	iss := dexIssuer(t)
	d := discover(t, iss)
	h := newDexPassword(t, iss, newRecorder(d.TokenEndpoint))
	mustf(t, h.Authenticate(testContext(t)), "Authenticate")
	err := h.Logout(testContext(t))
	if !errors.Is(err, auth.ErrNotRevoked) {
		t.Fatalf("Logout: %v, want auth.ErrNotRevoked", err)
	}
	t.Logf("Logout at Dex: %v", err)
	if h.Authenticated() {
		t.Error("still authenticated after Logout")
	}
}

// TestDexUsernameAfterRestart: a second handler (a new process) on the same
// file store serves the stored login without a token request and names the
// user from the stored ID token, verified against Dex's JWKS.
func TestDexUsernameAfterRestart(t *testing.T) {
	iss := dexIssuer(t)
	d := discover(t, iss)
	// Dex keeps one refresh token per user and client: not in parallel
	// with the other Dex logins.
	rt := dexPasswordTokens(t, d).RefreshToken
	store, err := auth.NewFileStore(auth.FileStoreConfig{Dir: filepath.Join(t.TempDir(), "tokens")})
	mustf(t, err, "NewFileStore")
	cfg := func(rec *recorder) handlers.RefreshTokenConfig {
		return handlers.RefreshTokenConfig{
			OAuthConfig: handlers.OAuthConfig{Endpoints: handlers.Endpoints{Issuer: iss}, ClientID: dexConfidentialID,
				ClientSecret: auth.NewSecret(dexConfidentialSecret), HTTPClient: rec.client(), Store: store},
			RefreshToken:  auth.NewSecret(rt),
			UsernameClaim: dexUsernameClaim,
		}
	}
	first, err := handlers.NewRefreshToken(cfg(newRecorder(d.TokenEndpoint)))
	mustf(t, err, "NewRefreshToken")
	mustf(t, first.Authenticate(testContext(t)), "Authenticate")
	mustf(t, first.Close(), "Close")

	rec := newRecorder(d.TokenEndpoint)
	second, err := handlers.NewRefreshToken(cfg(rec))
	mustf(t, err, "NewRefreshToken")
	defer second.Close()
	bearer(t, second)
	if got := second.Username(); got != userEmail {
		t.Errorf("Username() after a restart = %q, want %q", got, userEmail)
	}
	if x := rec.exchanges(); len(x) != 0 {
		t.Errorf("the second handler asked Dex for tokens: %v", x)
	}
}

// TestOIDCUsernameAfterRestart: an unpinned device login at oidc-provider
// saved in a FileStore; a second handler (a new process) serves it without
// a token request or a prompt and names the user from the stored ID token.
func TestOIDCUsernameAfterRestart(t *testing.T) {
	t.Parallel()
	iss := oidcIssuer(t)
	d := discover(t, iss)
	store, err := auth.NewFileStore(auth.FileStoreConfig{Dir: filepath.Join(t.TempDir(), "tokens")})
	mustf(t, err, "NewFileStore")
	first, _ := newOIDCDevice(t, iss, oidcDeviceID, oidcDeviceSecret, "", newRecorder(d.TokenEndpoint), withStore(store))
	mustf(t, first.Authenticate(testContext(t)), "Authenticate")
	mustf(t, first.Close(), "Close")

	rec := newRecorder(d.TokenEndpoint)
	second, prompts := newOIDCDevice(t, iss, oidcDeviceID, oidcDeviceSecret, "", rec, withStore(store))
	bearer(t, second)
	if got := second.Username(); got != userLogin {
		t.Errorf("Username() after a restart = %q, want %q", got, userLogin)
	}
	if x := rec.exchanges(); len(x) != 0 || prompts.Load() != 0 {
		t.Errorf("the second handler asked for tokens (%v) or prompted (%d)", x, prompts.Load())
	}
}
