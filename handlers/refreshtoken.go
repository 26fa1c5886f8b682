package handlers

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/authkit-go/authkit/auth"
)

// RefreshTokenConfig configures [RefreshToken]: a handler that starts from a
// refresh token obtained elsewhere (https://www.rfc-editor.org/rfc/rfc6749#section-6).
// ClientID, TokenURL (or Issuer) and RefreshToken are required.
type RefreshTokenConfig struct {
	OAuthConfig
	// RefreshToken is the token to start from. Required. It is spent on
	// first use; a rotated successor is kept (and saved to Store).
	RefreshToken auth.Secret
	// Username, if set, is the expected user: an ID token naming another
	// user is refused with an error wrapping auth.ErrUserMismatch.
	Username string
	// UsernameClaim is the ID token claim holding the username; empty
	// means "preferred_username".
	UsernameClaim string
}

// RefreshToken keeps a session alive with a refresh token obtained
// elsewhere. When the provider finally rejects the refresh token, the
// getters return an error wrapping auth.ErrLoginRequired: the original
// credentials are not held, so a new refresh token must be obtained.
// It is safe for concurrent use; Close it when done.
type RefreshToken struct {
	oauthHandler
	store auth.Store // for Logout's other entry of the user

	mu      sync.Mutex  // guards initial
	initial auth.Secret // the configured refresh token, until it is spent
}

var _ auth.AuthenticationHandler = (*RefreshToken)(nil)

// NewRefreshToken validates cfg and returns the handler. It performs no I/O.
func NewRefreshToken(cfg RefreshTokenConfig) (*RefreshToken, error) {
	if cfg.RefreshToken.IsZero() {
		return nil, auth.ConfigError("handlers: RefreshToken: RefreshToken is required")
	}
	h := &RefreshToken{initial: cfg.RefreshToken, store: cfg.Store}
	if err := h.initUser("RefreshToken", cfg.OAuthConfig, nil, cfg.Username, cfg.UsernameClaim); err != nil {
		return nil, err
	}
	var err error
	if h.engine, err = h.core.newEngine("RefreshToken", cfg.OAuthConfig, h.fetch, h.check, cfg.Username); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *RefreshToken) fetch(ctx context.Context, current *auth.Token) (*auth.Token, error) {
	fromConfig := false
	if !h.core.canRefresh(current) {
		// Nothing newer held: the configured token. It is dropped once the
		// provider answered it, since a provider that rotates refresh
		// tokens revokes the whole chain when a spent one comes back.
		h.mu.Lock()
		rt := h.initial
		h.mu.Unlock()
		if rt.IsZero() {
			return nil, fmt.Errorf("%w: the refresh token was spent or rejected", auth.ErrLoginRequired)
		}
		current, fromConfig = &auth.Token{RefreshToken: rt}, true
	}
	tok, err := h.core.refresh(ctx, current)
	if err == nil || errors.Is(err, auth.ErrInvalidGrant) || !fromConfig {
		h.mu.Lock()
		h.initial = auth.Secret{} // spent, rejected, or superseded by a newer one
		h.mu.Unlock()
	}
	if err != nil {
		return nil, fmt.Errorf("handlers: refresh: %w", loginRequired(err))
	}
	return tok, nil
}

// check verifies the ID token of a refreshed token, after the engine saved it.
func (h *RefreshToken) check(ctx context.Context, tok *auth.Token) (auth.Identity, error) {
	return h.core.checkIdentity(ctx, tok, h.user)
}

// Logout ends the login and the other stored login of the same user (a
// pinned and an unpinned login are two store entries). An error wrapping
// [auth.ErrNotRevoked] means the local logout happened but the provider
// may still accept the tokens.
func (h *RefreshToken) Logout(ctx context.Context) error { return h.logoutUser(ctx, h.store) }

// Authenticate refreshes unless a valid token is held.
func (h *RefreshToken) Authenticate(ctx context.Context) error {
	_, err := h.engine.Credentials(ctx)
	return h.core.waited("RefreshToken", err)
}
