package handlers

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/authtest"
)

// spend uses a refresh token once from outside the handler, as another
// process holding a copy would.
func spend(t *testing.T, p *authtest.Provider, rt string) {
	t.Helper()
	resp, err := http.PostForm(p.TokenURL(), url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"cli"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("spending the refresh token: HTTP %d", resp.StatusCode)
	}
}

var dialects = []struct {
	name    string
	dialect authtest.Dialect
}{
	{"standard (invalid_grant)", authtest.DialectStandard},
	{"Dex (400 invalid_request)", authtest.DialectDex},
}

// Providers answer a spent refresh token differently; every handler must
// see it as a rejected refresh token either way.
func TestSpentRefreshTokenInEveryDialect(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			t.Run("RefreshToken: ErrLoginRequired", func(t *testing.T) {
				clk := authtest.NewClock(time.Time{})
				p := newProvider(t, clk, func(c *authtest.ProviderConfig) { c.Dialect = d.dialect })
				rt := p.IssueRefreshToken("ada", "cli", []string{"offline_access"})
				spend(t, p, rt)
				h, err := NewRefreshToken(RefreshTokenConfig{OAuthConfig: OAuthConfig{
					Endpoints: Endpoints{TokenURL: p.TokenURL()}, ClientID: "cli", Clock: clk,
				}, RefreshToken: auth.NewSecret(rt)})
				if err != nil {
					t.Fatal(err)
				}
				defer h.Close()
				if err := h.Authenticate(context.Background()); !errors.Is(err, auth.ErrLoginRequired) {
					t.Fatalf("err = %v, want ErrLoginRequired", err)
				}
			})
			t.Run("Password: the password again, once", func(t *testing.T) {
				clk := authtest.NewClock(time.Time{})
				p := newProvider(t, clk, func(c *authtest.ProviderConfig) { c.Dialect = d.dialect })
				h, err := NewPassword(PasswordConfig{OAuthConfig: OAuthConfig{
					Endpoints: Endpoints{TokenURL: p.TokenURL()}, ClientID: "cli", Clock: clk,
				}, Username: "bob", Password: auth.NewSecret("bob-pw")})
				if err != nil {
					t.Fatal(err)
				}
				defer h.Close()
				ctx := context.Background()
				if err := h.Authenticate(ctx); err != nil {
					t.Fatal(err)
				}
				spend(t, p, h.engine.Current().RefreshToken.Reveal())
				h.Invalidate(auth.ServiceHub, "")
				if err := h.Authenticate(ctx); err != nil {
					t.Fatalf("no fallback to the password: %v", err)
				}
				if got := p.GrantRequests(authtest.GrantPassword); got != 2 {
					t.Fatalf("%d password grants, want 2", got)
				}
			})
		})
	}
}

// Dex sends no preferred_username: a configured username cannot be checked
// against it, and the error says which claim to configure instead.
func TestMissingUsernameClaim(t *testing.T) {
	clk := authtest.NewClock(time.Time{})
	p := newProvider(t, clk, func(c *authtest.ProviderConfig) { c.Dialect = authtest.DialectDex })
	scopes := []string{"openid", "offline_access"}
	login := func(claim string) (*RefreshToken, error) {
		h, err := NewRefreshToken(RefreshTokenConfig{OAuthConfig: OAuthConfig{
			Endpoints: Endpoints{Issuer: p.Issuer()}, ClientID: "cli", Clock: clk, Scopes: scopes,
		}, RefreshToken: auth.NewSecret(p.IssueRefreshToken("ada", "cli", scopes)), Username: "ada", UsernameClaim: claim})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		return h, h.Authenticate(context.Background())
	}
	_, err := login("")
	if !errors.Is(err, ErrInvalidIDToken) || errors.Is(err, auth.ErrUserMismatch) {
		t.Fatalf("err = %v, want ErrInvalidIDToken and not ErrUserMismatch", err)
	}
	for _, want := range []string{`"preferred_username"`, "UsernameClaim"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	h, err := login("name")
	if err != nil || h.Username() != "ada" {
		t.Fatalf("with UsernameClaim name: %v, user %q", err, h.Username())
	}
}
