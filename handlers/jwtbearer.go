package handlers

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/authkit-go/authkit/auth"
)

// GrantJWTBearer is RFC 7523 §2.1's grant_type.
const GrantJWTBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"

// JWTBearerConfig configures [JWTBearer]: a JWT is the grant itself
// (https://www.rfc-editor.org/rfc/rfc7523#section-2.1). ClientID and
// TokenURL (or Issuer) are required; the client may authenticate as
// OAuthConfig says, or not at all where the provider allows.
type JWTBearerConfig struct {
	OAuthConfig
	// Assertion makes the grant's JWT, anew for every request: a
	// [*PrivateKeyJWT] for a self-signed service identity (iss and sub the
	// client id, aud the token endpoint), or a federated source
	// ([FederatedTokenFile], [GitHubActionsToken], [CommandToken]), or an
	// AssertionSource of your own. Required.
	Assertion AssertionSource
}

// JWTBearer runs the JWT bearer grant, again before the token expires
// (there is no refresh token: a new assertion is made). It is safe for
// concurrent use; Close it when done.
type JWTBearer struct {
	oauthHandler
	assertion AssertionSource
}

var _ auth.AuthenticationHandler = (*JWTBearer)(nil)

// NewJWTBearer validates cfg and returns the handler. It performs no I/O.
func NewJWTBearer(cfg JWTBearerConfig) (*JWTBearer, error) {
	if cfg.Assertion == nil {
		return nil, auth.ConfigError("handlers: JWTBearer: Assertion is required")
	}
	h := &JWTBearer{assertion: cfg.Assertion}
	if err := h.core.init("JWTBearer", cfg.OAuthConfig, nil); err != nil {
		return nil, err
	}
	var err error
	if h.engine, err = h.core.newEngine("JWTBearer", cfg.OAuthConfig, h.fetch, nil, ""); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *JWTBearer) fetch(ctx context.Context, _ *auth.Token) (*auth.Token, error) {
	ep, err := h.core.endpoints(ctx, 0)
	if err != nil {
		return nil, err
	}
	a, err := h.assertion.Assertion(ctx, AssertionRequest{ClientID: h.core.clientID, Audience: ep.TokenURL, Now: h.core.clock.Now()})
	if err != nil {
		return nil, fmt.Errorf("handlers: JWT bearer grant: assertion: %w", err)
	}
	tok, err := h.core.grant(ctx, url.Values{"grant_type": {GrantJWTBearer}, "assertion": {a.Reveal()}})
	if err != nil {
		return nil, fmt.Errorf("handlers: JWT bearer grant: %w", err)
	}
	tok.RefreshToken, tok.RefreshExpiry = auth.Secret{}, time.Time{} // a new assertion is made instead
	return tok, nil
}

// Authenticate runs the grant unless a valid token is held.
func (h *JWTBearer) Authenticate(ctx context.Context) error {
	_, err := h.engine.Credentials(ctx)
	return h.core.waited("JWTBearer", err)
}
