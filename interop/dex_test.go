package interop

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/handlers"
)

// dexScopes ask Dex for an ID token with the user's email and name and for
// a refresh token.
var dexScopes = []string{"openid", "email", "profile", "offline_access"}

// Dex's ID and access tokens carry no preferred_username (the local
// connector sets "name" to the username and "email"), so the handlers read
// the username from "email".
const dexUsernameClaim = "email"

// dexPasswordTokens logs in with the password grant over raw HTTP.
func dexPasswordTokens(t testing.TB, d discovery) tokenAnswer {
	t.Helper()
	a := postForm(t, d.TokenEndpoint, url.Values{
		"grant_type": {"password"}, "username": {userEmail}, "password": {userPassword},
		"scope": {strings.Join(dexScopes, " ")},
	}, dexConfidentialID, dexConfidentialSecret)
	wantTokens(t, "password grant", a, true, true)
	return a
}

// dexRefresh spends rt over raw HTTP and returns Dex's answer.
func dexRefresh(t testing.TB, d discovery, rt string) tokenAnswer {
	t.Helper()
	return postForm(t, d.TokenEndpoint, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}},
		dexConfidentialID, dexConfidentialSecret)
}

// currentRefresh returns the refresh token h holds now.
func currentRefresh(t testing.TB, h auth.TokenReader) string {
	t.Helper()
	tok, err := h.Token(testContext(t))
	if err != nil || tok.RefreshToken.Reveal() == "" {
		t.Fatalf("handler holds no refresh token")
	}
	return tok.RefreshToken.Reveal()
}

func isJWT(s string) bool { return strings.Count(s, ".") == 2 }

func newDexPassword(t testing.TB, iss string, rec *recorder) *handlers.Password {
	t.Helper()
	h, err := handlers.NewPassword(handlers.PasswordConfig{
		OAuthConfig: handlers.OAuthConfig{
			Endpoints:    handlers.Endpoints{Issuer: iss},
			ClientID:     dexConfidentialID,
			ClientSecret: auth.NewSecret(dexConfidentialSecret),
			Scopes:       dexScopes,
			HTTPClient:   rec.client(),
		},
		// Dex's local connector logs in with the email, not the username.
		Username: userEmail,
		Password: auth.NewSecret(userPassword),
	})
	mustf(t, err, "NewPassword")
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// TestDexPassword: the password grant, then refreshes with strict rotation.
func TestDexPassword(t *testing.T) {
	iss := dexIssuer(t)
	d := discover(t, iss)
	rec := newRecorder(d.TokenEndpoint)
	h := newDexPassword(t, iss, rec)

	mustf(t, h.Authenticate(testContext(t)), "Authenticate")
	tok1 := bearer(t, h)
	if !isJWT(tok1) {
		t.Errorf("Dex access token is not a JWT")
	}
	if h.Username() != userEmail {
		t.Errorf("Username() = %q, want %q", h.Username(), userEmail)
	}

	// A rejected access token is replaced through the refresh token, which
	// Dex rotates (reuseInterval 0s).
	rt1 := currentRefresh(t, h)
	h.Invalidate(auth.ServiceHub, "Bearer "+tok1)
	tok2 := bearer(t, h)
	if tok2 == tok1 {
		t.Fatalf("same access token after Invalidate")
	}
	rt2 := currentRefresh(t, h)
	if rt2 == rt1 {
		t.Errorf("refresh token not rotated")
	}
	if got := rec.count("refresh_token"); got != 1 {
		t.Errorf("refresh_token requests = %d, want 1 (%v)", got, rec.exchanges())
	}
	wantError(t, "the spent refresh token", dexRefresh(t, d, rt1), 400, "invalid_request")
}

// TestDexPasswordFallsBackAfterSpentRefreshToken: when Dex refuses the
// handler's refresh token as spent, it answers invalid_request (not
// invalid_grant); the password handler must still log in again with the
// password.
func TestDexPasswordFallsBackAfterSpentRefreshToken(t *testing.T) {
	iss := dexIssuer(t)
	d := discover(t, iss)
	rec := newRecorder(d.TokenEndpoint)
	h := newDexPassword(t, iss, rec)
	mustf(t, h.Authenticate(testContext(t)), "Authenticate")
	tok1 := bearer(t, h)

	// Somebody else spends the handler's refresh token.
	wantTokens(t, "spending the handler's refresh token elsewhere", dexRefresh(t, d, currentRefresh(t, h)), true, false)

	h.Invalidate(auth.ServiceHub, "Bearer "+tok1)
	hdr, err := h.HubRequestHeaders(testContext(t))
	if err != nil {
		t.Fatalf("HubRequestHeaders after the refresh token was spent elsewhere: %v\n"+
			"exchanges: %v\nwant: a fallback to the password grant", err, rec.exchanges())
	}
	if hdr.Get("Authorization") == "Bearer "+tok1 {
		t.Errorf("the rejected token is still served")
	}
	x := rec.exchanges()
	if n := len(x); n < 3 || x[n-2].Error != "invalid_request" || x[n-1].GrantType != "password" || x[n-1].Status != 200 {
		t.Errorf("exchanges = %v, want ... refresh_token→400 invalid_request, password→200", x)
	}
}

func newDexRefreshToken(t testing.TB, iss, rt, user string, rec *recorder) *handlers.RefreshToken {
	t.Helper()
	h, err := handlers.NewRefreshToken(handlers.RefreshTokenConfig{
		OAuthConfig: handlers.OAuthConfig{
			Endpoints:    handlers.Endpoints{Issuer: iss},
			ClientID:     dexConfidentialID,
			ClientSecret: auth.NewSecret(dexConfidentialSecret),
			HTTPClient:   rec.client(),
		},
		RefreshToken:  auth.NewSecret(rt),
		Username:      user,
		UsernameClaim: dexUsernameClaim,
	})
	mustf(t, err, "NewRefreshToken")
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// TestDexRefreshToken: a refresh token from elsewhere, spent once, rotated;
// the ID token Dex returns is verified against Dex's JWKS and names the
// user through the configured claim.
func TestDexRefreshToken(t *testing.T) {
	iss := dexIssuer(t)
	d := discover(t, iss)
	rt0 := dexPasswordTokens(t, d).RefreshToken
	rec := newRecorder(d.TokenEndpoint)
	h := newDexRefreshToken(t, iss, rt0, userEmail, rec)

	mustf(t, h.Authenticate(testContext(t)), "Authenticate")
	if h.Username() != userEmail {
		t.Errorf("Username() = %q, want %q (from the verified ID token's %q claim)", h.Username(), userEmail, dexUsernameClaim)
	}
	rt1 := currentRefresh(t, h)
	if rt1 == rt0 {
		t.Errorf("refresh token not rotated")
	}
	tok1 := bearer(t, h)
	h.Invalidate(auth.ServiceHub, "Bearer "+tok1)
	if bearer(t, h) == tok1 {
		t.Errorf("same access token after Invalidate")
	}
	if currentRefresh(t, h) == rt1 {
		t.Errorf("refresh token not rotated on the second refresh")
	}
	if got := rec.count("refresh_token"); got != 2 {
		t.Errorf("refresh_token requests = %d, want 2 (%v)", got, rec.exchanges())
	}
}

// TestDexRefreshTokenSpent: a spent refresh token must end in
// auth.ErrLoginRequired although Dex answers invalid_request.
func TestDexRefreshTokenSpent(t *testing.T) {
	iss := dexIssuer(t)
	d := discover(t, iss)
	rt0 := dexPasswordTokens(t, d).RefreshToken
	wantTokens(t, "spending the refresh token", dexRefresh(t, d, rt0), true, false)

	rec := newRecorder(d.TokenEndpoint)
	h := newDexRefreshToken(t, iss, rt0, "", rec)
	err := h.Authenticate(testContext(t))
	if !errors.Is(err, auth.ErrLoginRequired) {
		t.Errorf("Authenticate with a spent refresh token = %v (exchanges %v), want an error wrapping auth.ErrLoginRequired", err, rec.exchanges())
	}
	// Silent getters say the same, without another request.
	_, err = h.HubRequestHeaders(testContext(t))
	if !errors.Is(err, auth.ErrLoginRequired) {
		t.Errorf("HubRequestHeaders after the rejection = %v, want auth.ErrLoginRequired", err)
	}
	if n := rec.count("refresh_token"); n != 1 {
		t.Errorf("refresh_token requests = %d, want 1: a spent token is sent once", n)
	}
}

// TestDexRefreshTokenUserMismatch: the verified ID token names another
// user than the configured one.
func TestDexRefreshTokenUserMismatch(t *testing.T) {
	iss := dexIssuer(t)
	d := discover(t, iss)
	rec := newRecorder(d.TokenEndpoint)
	h := newDexRefreshToken(t, iss, dexPasswordTokens(t, d).RefreshToken, "bob@example.com", rec)
	if err := h.Authenticate(testContext(t)); !errors.Is(err, auth.ErrUserMismatch) {
		t.Errorf("Authenticate = %v, want auth.ErrUserMismatch", err)
	}
}

// TestDexDeviceCode: the device flow, approved through Dex's own pages
// while the handler polls; then a rotated refresh.
func TestDexDeviceCode(t *testing.T) {
	t.Parallel()
	iss := dexIssuer(t)
	d := discover(t, iss)
	tests := []struct {
		name       string
		id, secret string
		style      handlers.AuthStyle
	}{
		{"public", dexPublicID, "", handlers.AuthStyleNone},
		// Dex reads the client only from the form at /device/code and
		// keeps the secret for its own code exchange: a confidential
		// client must use client_secret_post there (HTTP Basic is ignored).
		{"confidential_post", dexConfidentialID, dexConfidentialSecret, handlers.AuthStylePost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := newRecorder(d.TokenEndpoint)
			var approved <-chan struct{}
			h, err := handlers.NewDeviceCode(handlers.DeviceCodeConfig{
				OAuthConfig: handlers.OAuthConfig{
					Endpoints:    handlers.Endpoints{Issuer: iss},
					ClientID:     tt.id,
					ClientSecret: auth.NewSecret(tt.secret),
					AuthStyle:    tt.style,
					Scopes:       dexScopes,
					HTTPClient:   rec.client(),
				},
				Username:      userEmail,
				UsernameClaim: dexUsernameClaim,
				Prompt: func(ctx context.Context, p handlers.DevicePrompt) error {
					if p.UserCode == "" || !strings.HasPrefix(p.VerificationURI, iss+"/") {
						t.Errorf("prompt %+v", p)
					}
					// The person approves after the handler's first poll
					// was told authorization_pending.
					pending := rec.when(func(x exchange) bool { return x.Error == "authorization_pending" })
					approved = goBackground(t, func(t testing.TB) {
						select {
						case <-pending:
						case <-ctx.Done():
							return
						}
						approveDex(t, iss, p.VerificationURI, p.UserCode)
					})
					return nil
				},
			})
			mustf(t, err, "NewDeviceCode")
			t.Cleanup(func() { _ = h.Close() })

			// Silent getters do not start a login.
			if _, err := h.HubRequestHeaders(testContext(t)); !errors.Is(err, auth.ErrLoginRequired) {
				t.Errorf("HubRequestHeaders before login = %v, want auth.ErrLoginRequired", err)
			}
			err = h.Authenticate(testContext(t))
			if approved != nil {
				<-approved
			}
			mustf(t, err, "Authenticate (exchanges %v)", rec.exchanges())
			if h.Username() != userEmail {
				t.Errorf("Username() = %q, want %q", h.Username(), userEmail)
			}
			x := rec.exchanges()
			if len(x) < 2 || x[0].Error != "authorization_pending" || x[len(x)-1].GrantType != deviceCodeGrantType || x[len(x)-1].Status != 200 {
				t.Errorf("exchanges = %v, want device_code polls: authorization_pending ... then 200", x)
			}
			if slices.ContainsFunc(x, func(x exchange) bool { return x.Error == "slow_down" }) {
				t.Errorf("exchanges = %v: the handler polled faster than Dex's interval", x)
			}
			tok1 := bearer(t, h)
			rt1 := currentRefresh(t, h)
			h.Invalidate(auth.ServiceHub, "Bearer "+tok1)
			if bearer(t, h) == tok1 {
				t.Errorf("same access token after Invalidate")
			}
			if currentRefresh(t, h) == rt1 {
				t.Errorf("refresh token not rotated")
			}
		})
	}
}
