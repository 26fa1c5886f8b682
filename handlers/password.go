package handlers

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/internal/totp"
)

// DefaultTOTPParam is the form parameter that carries a TOTP code.
const DefaultTOTPParam = "totp"

// PasswordConfig configures [Password]: the resource owner password
// credentials grant (https://www.rfc-editor.org/rfc/rfc6749#section-4.3),
// optionally with a TOTP second factor as Keycloak-style providers accept
// it. ClientID, TokenURL (or Issuer), Username and Password (or
// PasswordFunc) are required.
type PasswordConfig struct {
	OAuthConfig
	// Username is the user's login name. Required.
	Username string
	// Password is the user's password. Required unless PasswordFunc is set.
	Password auth.Secret
	// PasswordFunc, if set, supplies the password at each password login
	// (it may ask a person) instead of Password; a refresh does not call it.
	// An error wrapping auth.ErrLoginRequired says no password can be had
	// now, and surfaces as such from the getters; like any failed fetch it
	// is the answer until the engine's backoff lets the next attempt through.
	PasswordFunc func(ctx context.Context) (auth.Secret, error)
	// TOTPSecret, if set, is the user's base32 RFC 6238 secret: a code is
	// computed at each login (https://www.rfc-editor.org/rfc/rfc6238).
	TOTPSecret auth.Secret
	// TOTPCode, if set, supplies a one-time code at each login (it may
	// ask a person). It is used instead of TOTPSecret.
	TOTPCode func(ctx context.Context) (string, error)
	// TOTPParam names the form parameter of the code; empty means "totp".
	TOTPParam string
}

// Password logs in with a username and password (and TOTP code), keeps the
// token fresh with its refresh token, and falls back to the password grant
// once when the provider rejects the refresh token with invalid_grant (for
// example "Session not active" after the session was removed on the server).
// It is safe for concurrent use; Close it when done.
type Password struct {
	oauthHandler
	pass   auth.Secret
	passFn func(context.Context) (auth.Secret, error)
	code   func(context.Context) (string, error)
	param  string
	store  auth.Store // for Logout's other entry of the user
}

var _ auth.AuthenticationHandler = (*Password)(nil)

// NewPassword validates cfg and returns the handler. It performs no I/O.
func NewPassword(cfg PasswordConfig) (*Password, error) {
	if cfg.Username == "" || (cfg.Password.IsZero() && cfg.PasswordFunc == nil) {
		return nil, auth.ConfigError("handlers: Password: Username and Password (or PasswordFunc) are required")
	}
	if !cfg.TOTPSecret.IsZero() {
		if _, err := totp.Code(cfg.TOTPSecret.Reveal(), time.Time{}); err != nil {
			return nil, auth.ConfigError("handlers: Password: TOTPSecret is not a base32 secret")
		}
	}
	h := &Password{oauthHandler: oauthHandler{user: cfg.Username}, pass: cfg.Password, passFn: cfg.PasswordFunc, code: cfg.TOTPCode, param: cfg.TOTPParam, store: cfg.Store}
	if err := h.core.init("Password", cfg.OAuthConfig, nil); err != nil {
		return nil, err
	}
	if h.param == "" {
		h.param = DefaultTOTPParam
	}
	if h.code == nil && !cfg.TOTPSecret.IsZero() {
		secret := cfg.TOTPSecret
		clock := h.core.clock
		h.code = func(context.Context) (string, error) { return totp.Code(secret.Reveal(), clock.Now()) }
	}
	if reservedParams[h.param] {
		return nil, auth.ConfigError("handlers: Password: TOTPParam %q collides with a grant parameter", h.param)
	}
	var err error
	if h.engine, err = h.core.newEngine("Password", cfg.OAuthConfig, h.fetch, nil, cfg.Username); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *Password) fetch(ctx context.Context, current *auth.Token) (*auth.Token, error) {
	if h.core.canRefresh(current) {
		tok, err := h.core.refresh(ctx, current)
		if err == nil {
			return tok, nil
		}
		if !refreshRejected(err) {
			return nil, fmt.Errorf("handlers: refresh: %w", err)
		}
		h.core.log.Info("handlers: refresh token rejected; logging in with the password again", "reason", err)
	}
	pass := h.pass
	if h.passFn != nil {
		p, err := h.passFn(ctx)
		if err != nil {
			return nil, fmt.Errorf("handlers: password for %q: %w", h.user, err)
		}
		pass = p
	}
	form := url.Values{"grant_type": {"password"}, "username": {h.user}, "password": {pass.Reveal()}}
	if h.code != nil {
		c, err := h.code(ctx)
		if err != nil {
			return nil, fmt.Errorf("handlers: TOTP code: %w", err)
		}
		form.Set(h.param, c)
	}
	tok, err := h.core.grant(ctx, form)
	if err != nil {
		return nil, fmt.Errorf("handlers: password grant for %q: %w", h.user, err)
	}
	return tok, nil
}

// Logout ends the login and the other stored login of the same user (a
// pinned and an unpinned login are two store entries). An error wrapping
// [auth.ErrNotRevoked] means the local logout happened but the provider
// may still accept the tokens.
func (h *Password) Logout(ctx context.Context) error { return h.logoutUser(ctx, h.store) }

// Authenticate logs in unless a valid token is held.
func (h *Password) Authenticate(ctx context.Context) error {
	_, err := h.engine.Credentials(ctx)
	return h.core.waited("Password", err)
}
