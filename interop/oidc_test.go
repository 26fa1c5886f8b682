package interop

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/handlers"
)

// newOIDCDevice returns a device code handler for oidc-provider whose prompt
// approves each login through the provider's device pages once the handler
// has been told authorization_pending, changed by opts. It returns the
// number of prompts.
func newOIDCDevice(t *testing.T, iss, id, secret, user string, rec *recorder, opts ...func(*handlers.DeviceCodeConfig)) (*handlers.DeviceCode, *atomic.Int32) {
	t.Helper()
	var prompts atomic.Int32
	cfg := handlers.DeviceCodeConfig{
		OAuthConfig: handlers.OAuthConfig{
			Endpoints:    handlers.Endpoints{Issuer: iss},
			ClientID:     id,
			ClientSecret: auth.NewSecret(secret),
			HTTPClient:   rec.client(),
			// Scopes: the default, openid profile offline_access.
		},
		Username: user,
		// oidc-provider puts the profile claims (preferred_username) in
		// userinfo, not in the ID token of a device or code flow
		// (conformIdTokenClaims, OIDC Core §5.4); "sub" is the account id.
		UsernameClaim: "sub",
		Prompt: func(ctx context.Context, p handlers.DevicePrompt) error {
			prompts.Add(1)
			if p.UserCode == "" || p.VerificationURIComplete == "" || !strings.HasPrefix(p.VerificationURI, iss+"/") {
				t.Errorf("prompt %+v", p)
			}
			pending := rec.when(func(x exchange) bool { return x.Error == "authorization_pending" })
			done := goBackground(t, func(t testing.TB) {
				select {
				case <-pending:
				case <-ctx.Done():
					return
				}
				approveOIDC(t, p.VerificationURIComplete, p.UserCode)
			})
			t.Cleanup(func() { <-done })
			return nil
		},
	}
	for _, o := range opts {
		o(&cfg)
	}
	h, err := handlers.NewDeviceCode(cfg)
	mustf(t, err, "NewDeviceCode")
	t.Cleanup(func() { _ = h.Close() })
	return h, &prompts
}

// withStore keeps the device login in store.
func withStore(store auth.Store) func(*handlers.DeviceCodeConfig) {
	return func(c *handlers.DeviceCodeConfig) { c.Store = store }
}

// TestOIDCDeviceCode: the device flow at oidc-provider, public and
// confidential (client_secret_basic) clients, approved through the
// provider's pages while the handler polls.
func TestOIDCDeviceCode(t *testing.T) {
	t.Parallel()
	iss := oidcIssuer(t)
	d := discover(t, iss)
	tests := []struct {
		name       string
		id, secret string
	}{
		{"public", oidcDevicePublicID, ""},
		{"confidential_basic", oidcDeviceID, oidcDeviceSecret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := newRecorder(d.TokenEndpoint)
			h, _ := newOIDCDevice(t, iss, tt.id, tt.secret, userLogin, rec)
			if err := h.Authenticate(testContext(t)); err != nil {
				t.Fatalf("Authenticate: %v (exchanges %v)", err, rec.exchanges())
			}
			if h.Username() != userLogin {
				t.Errorf("Username() = %q, want %q", h.Username(), userLogin)
			}
			x := rec.exchanges()
			if len(x) < 2 || x[0].Error != "authorization_pending" || x[len(x)-1].Status != 200 {
				t.Errorf("exchanges = %v, want authorization_pending ... then 200", x)
			}
			tok := bearer(t, h)
			if cur, err := h.Token(testContext(t)); err != nil || cur.RefreshToken.Reveal() == "" {
				t.Errorf("no refresh token from the device flow")
			}
			in := introspect(t, iss, tok, oidcCCID, oidcCCSecret)
			if in["active"] != true || in["sub"] != userLogin || in["client_id"] != tt.id {
				t.Errorf("introspection = %v, want active for %s", in, userLogin)
			}
		})
	}
}

// TestOIDCRefreshReuseDetection: oidc-provider rotates refresh tokens and,
// when a spent one comes back, revokes the grant. The device code handler's
// next silent refresh is then refused (invalid_grant): the getters say
// auth.ErrLoginRequired without prompting, and Authenticate logs in again
// through the device flow.
func TestOIDCRefreshReuseDetection(t *testing.T) {
	t.Parallel()
	iss := oidcIssuer(t)
	d := discover(t, iss)
	rec := newRecorder(d.TokenEndpoint)
	h, prompts := newOIDCDevice(t, iss, oidcDevicePublicID, "", userLogin, rec)
	ctx := testContext(t)
	mustf(t, h.Authenticate(ctx), "Authenticate (exchanges %v)", rec.exchanges())

	// A silent refresh rotates the refresh token.
	rt1 := currentRefresh(t, h)
	tok1 := bearer(t, h)
	h.Invalidate(auth.ServiceHub, "Bearer "+tok1)
	tok2 := bearer(t, h)
	rt2 := currentRefresh(t, h)
	if tok2 == tok1 || rt2 == rt1 {
		t.Fatalf("refresh did not rotate (same access token %t, same refresh token %t)", tok2 == tok1, rt2 == rt1)
	}

	// The spent refresh token comes back (a stolen copy, another process):
	// oidc-provider refuses it and revokes the grant.
	reuse := postForm(t, d.TokenEndpoint, url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {rt1}, "client_id": {oidcDevicePublicID},
	}, "", "")
	wantError(t, "reused refresh token", reuse, 400, "invalid_grant")
	if in := introspect(t, iss, tok2, oidcCCID, oidcCCSecret); in["active"] != false {
		t.Errorf("access token still active after the grant was revoked: %v", in)
	}

	// The handler's own, newest refresh token died with the grant. A
	// rejection that follows the last one within the engine's rejection
	// backoff is deferred (a service that rejects every token must not cost
	// a fetch per request), so the service keeps rejecting tok2 until the
	// engine tries its refresh token.
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		h.Invalidate(auth.ServiceHub, "Bearer "+tok2)
		if _, err = h.HubRequestHeaders(ctx); err != nil || time.Now().After(deadline) {
			break
		}
	}
	if !errors.Is(err, auth.ErrLoginRequired) || !errors.Is(err, auth.ErrInvalidGrant) {
		t.Fatalf("HubRequestHeaders after the grant was revoked = %v, want auth.ErrLoginRequired wrapping invalid_grant", err)
	}
	if n := prompts.Load(); n != 1 {
		t.Errorf("prompts = %d, want 1: a silent getter never prompts", n)
	}
	// Authenticate runs the device login again.
	mustf(t, h.Authenticate(ctx), "Authenticate after revocation (exchanges %v)", rec.exchanges())
	if n := prompts.Load(); n != 2 {
		t.Errorf("prompts = %d, want 2", n)
	}
	if tok3 := bearer(t, h); tok3 == tok2 {
		t.Errorf("the revoked token is still served")
	}
	if currentRefresh(t, h) == rt2 {
		t.Errorf("the revoked refresh token is still held")
	}
}
