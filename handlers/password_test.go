package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/authtest"
	"github.com/authkit-go/authkit/internal/totp"
)

func TestPasswordWireFormat(t *testing.T) {
	tests := []struct {
		name     string
		mod      func(*PasswordConfig)
		user     string
		wantForm func(clk *authtest.Clock) url.Values
		wantAuth string
	}{
		{
			name: "TOTP from the secret, basic auth, scope and audience",
			mod: func(c *PasswordConfig) {
				c.ClientID, c.ClientSecret = "svc", auth.NewSecret(svcSecret)
				c.Username, c.Password, c.TOTPSecret = "ada", auth.NewSecret(adaPass), auth.NewSecret(adaTOTP)
				c.Scopes, c.Audiences = []string{"openid", "hub"}, []string{"hub-api"}
			},
			wantForm: func(clk *authtest.Clock) url.Values {
				code, _ := totp.Code(adaTOTP, clk.Now())
				return url.Values{"grant_type": {"password"}, "username": {"ada"}, "password": {adaPass}, "totp": {code},
					"scope": {"openid hub"}, "audience": {"hub-api"}}
			},
			wantAuth: authtest.AuthMethodBasic,
		},
		{
			name: "TOTP from a code source, post auth",
			mod: func(c *PasswordConfig) {
				c.ClientID, c.ClientSecret, c.AuthStyle = "svc", auth.NewSecret(svcSecret), AuthStylePost
				c.Username, c.Password = "ada", auth.NewSecret(adaPass)
				c.TOTPCode = func(context.Context) (string, error) { return totp.Code(adaTOTP, c.Clock.Now()) }
			},
			wantForm: func(clk *authtest.Clock) url.Values {
				code, _ := totp.Code(adaTOTP, clk.Now())
				return url.Values{"grant_type": {"password"}, "username": {"ada"}, "password": {adaPass}, "totp": {code},
					"client_id": {"svc"}, "client_secret": {svcSecret}}
			},
			wantAuth: authtest.AuthMethodPost,
		},
		{
			name: "public client without TOTP",
			mod:  func(c *PasswordConfig) { c.ClientID, c.Username, c.Password = "cli", "bob", auth.NewSecret("bob-pw") },
			wantForm: func(*authtest.Clock) url.Values {
				return url.Values{"grant_type": {"password"}, "username": {"bob"}, "password": {"bob-pw"}, "client_id": {"cli"}}
			},
			wantAuth: authtest.AuthMethodNone,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := authtest.NewClock(time.Time{})
			p := newProvider(t, clk)
			rec := &recorder{clk: clk}
			cfg := PasswordConfig{OAuthConfig: OAuthConfig{Endpoints: Endpoints{TokenURL: p.TokenURL()}, Clock: clk, HTTPClient: rec.client()}}
			tt.mod(&cfg)
			h, err := NewPassword(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			if err := h.Authenticate(context.Background()); err != nil {
				t.Fatal(err)
			}
			reqs := rec.to(authtest.EndpointToken)
			if len(reqs) != 1 || !reflect.DeepEqual(reqs[0].form, tt.wantForm(clk)) {
				t.Errorf("form = %v\nwant %v", reqs[0].form, tt.wantForm(clk))
			}
			if got := p.LastRequest(authtest.EndpointToken).AuthMethod; got != tt.wantAuth {
				t.Errorf("auth method %q, want %q", got, tt.wantAuth)
			}
			if h.Username() != cfg.Username || !h.Authenticated() {
				t.Errorf("username %q authenticated %t", h.Username(), h.Authenticated())
			}
		})
	}
}

func TestPasswordWrongTOTP(t *testing.T) {
	clk := authtest.NewClock(time.Time{})
	p := newProvider(t, clk)
	h, err := NewPassword(PasswordConfig{OAuthConfig: OAuthConfig{Endpoints: Endpoints{TokenURL: p.TokenURL()}, ClientID: "cli", Clock: clk},
		Username: "ada", Password: auth.NewSecret(adaPass), TOTPCode: func(context.Context) (string, error) { return "000000", nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.Authenticate(context.Background()); !errors.Is(err, auth.ErrInvalidGrant) {
		t.Fatalf("err = %v", err)
	}
}

func TestPasswordRefreshFallback(t *testing.T) {
	tests := []struct {
		name         string
		spoil        func(p *authtest.Provider)
		wantPassword int
		wantRefresh  int
		wantErr      bool
	}{
		{"refresh works", func(*authtest.Provider) {}, 1, 1, false},
		{"session removed on the server: password again, once", func(p *authtest.Provider) { p.RevokeSession("ada") }, 2, 1, false},
		{"refresh 5xx is retried, never a fallback to the password", func(p *authtest.Provider) { p.FailNextAt(authtest.EndpointToken, 4, 503, "") }, 1, 5, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := authtest.NewClock(time.Time{})
			p := newProvider(t, clk)
			store := &auth.MemoryStore{}
			h, err := NewPassword(PasswordConfig{OAuthConfig: OAuthConfig{
				Endpoints: Endpoints{TokenURL: p.TokenURL()}, ClientID: "cli", Clock: clk, Store: store,
			}, Username: "ada", Password: auth.NewSecret(adaPass), TOTPSecret: auth.NewSecret(adaTOTP)})
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			ctx := context.Background()
			if err := h.Authenticate(ctx); err != nil {
				t.Fatal(err)
			}
			first := h.engine.Current()
			tt.spoil(p)
			h.Invalidate(auth.ServiceHub, "")                                               // a service rejected the token: the next use refreshes
			err = driven(clk, func() error { return h.Authenticate(ctx) }, h.Authenticated) // the backoff passes on the fake clock; not the next refresh
			if tt.wantErr != (err != nil) {
				t.Fatalf("err = %v", err)
			}
			if got := p.GrantRequests(authtest.GrantPassword); got != tt.wantPassword {
				t.Errorf("%d password grants, want %d", got, tt.wantPassword)
			}
			if got := p.GrantRequests(authtest.GrantRefreshToken); got != tt.wantRefresh {
				t.Errorf("%d refreshes, want %d", got, tt.wantRefresh)
			}
			if err == nil {
				saved, _ := store.Load(ctx, h.core.storeKey("ada"))
				if saved == nil || saved.RefreshToken.Reveal() == first.RefreshToken.Reveal() || saved.RefreshToken.Reveal() != h.engine.Current().RefreshToken.Reveal() {
					t.Error("the new refresh token was not persisted")
				}
			}
		})
	}
}

// TestPasswordFunc: the password is asked for at a password login only;
// a refresh and a stored login do without it, and a function that has no
// password to give makes the handler say that a login is required,
// without a request.
func TestPasswordFunc(t *testing.T) {
	clk := authtest.NewClock(time.Time{})
	p := newProvider(t, clk)
	store := &auth.MemoryStore{}
	var asked int
	newH := func(fn func(context.Context) (auth.Secret, error), s auth.Store) *Password {
		h, err := NewPassword(PasswordConfig{OAuthConfig: OAuthConfig{
			Endpoints: Endpoints{TokenURL: p.TokenURL()}, ClientID: "cli", Clock: clk, Store: s,
		}, Username: "ada", PasswordFunc: fn, TOTPSecret: auth.NewSecret(adaTOTP)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		return h
	}
	give := func(context.Context) (auth.Secret, error) { asked++; return auth.NewSecret(adaPass), nil }
	none := func(context.Context) (auth.Secret, error) {
		asked++
		return auth.Secret{}, fmt.Errorf("%w: no terminal to ask for a password", auth.ErrLoginRequired)
	}
	ctx := context.Background()

	h := newH(give, store)
	if err := h.Authenticate(ctx); err != nil || asked != 1 {
		t.Fatalf("login: %v, asked %d times", err, asked)
	}
	h.Invalidate(auth.ServiceHub, "")
	if err := h.Authenticate(ctx); err != nil || asked != 1 || p.GrantRequests(authtest.GrantRefreshToken) != 1 {
		t.Fatalf("refresh: %v, asked %d times, %d refreshes", err, asked, p.GrantRequests(authtest.GrantRefreshToken))
	}
	if _, err := newH(none, store).Token(ctx); err != nil || asked != 1 {
		t.Fatalf("stored login: %v, asked %d times", err, asked)
	}
	before := p.Requests(authtest.EndpointToken)
	_, err := newH(none, &auth.MemoryStore{}).Token(ctx)
	if !errors.Is(err, auth.ErrLoginRequired) || !strings.Contains(err.Error(), "no terminal") || asked != 2 {
		t.Fatalf("no password: %v, asked %d times", err, asked)
	}
	if n := p.Requests(authtest.EndpointToken) - before; n != 0 {
		t.Errorf("%d token requests without a password", n)
	}
	if _, err := NewPassword(PasswordConfig{OAuthConfig: OAuthConfig{Endpoints: Endpoints{TokenURL: p.TokenURL()}, ClientID: "cli"}, Username: "ada"}); !errors.Is(err, auth.ErrInvalidConfig) {
		t.Errorf("neither Password nor PasswordFunc: %v", err)
	}
}
