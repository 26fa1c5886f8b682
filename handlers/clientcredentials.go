package handlers

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/authkit-go/authkit/auth"
)

// ClientCredentialsConfig configures [ClientCredentials]: a service logging
// in as itself (https://www.rfc-editor.org/rfc/rfc6749#section-4.4).
// ClientID, ClientSecret (or ClientAssertion: private_key_jwt, a federated
// token) and TokenURL (or Issuer) are required; Scopes default to none.
type ClientCredentialsConfig struct {
	OAuthConfig
}

// ClientCredentials runs the client credentials grant. There is no refresh
// token: the engine runs the grant again before the token expires. It is
// safe for concurrent use; Close it when done.
type ClientCredentials struct {
	oauthHandler
}

var _ auth.AuthenticationHandler = (*ClientCredentials)(nil)

// NewClientCredentials validates cfg and returns the handler. It performs
// no I/O: the first token is fetched on first use.
func NewClientCredentials(cfg ClientCredentialsConfig) (*ClientCredentials, error) {
	if cfg.ClientSecret.IsZero() && cfg.ClientAssertion == nil {
		return nil, auth.ConfigError("handlers: ClientCredentials: ClientSecret or ClientAssertion is required")
	}
	h := &ClientCredentials{}
	if err := h.core.init("ClientCredentials", cfg.OAuthConfig, nil); err != nil {
		return nil, err
	}
	var err error
	if h.engine, err = h.core.newEngine("ClientCredentials", cfg.OAuthConfig, h.fetch, nil, ""); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *ClientCredentials) fetch(ctx context.Context, _ *auth.Token) (*auth.Token, error) {
	tok, err := h.core.grant(ctx, url.Values{"grant_type": {"client_credentials"}})
	if err != nil {
		return nil, fmt.Errorf("handlers: client credentials grant: %w", err)
	}
	tok.RefreshToken, tok.RefreshExpiry = auth.Secret{}, time.Time{} // never used: the grant runs again
	return tok, nil
}

// Authenticate fetches a token unless a valid one is held.
func (h *ClientCredentials) Authenticate(ctx context.Context) error {
	_, err := h.engine.Credentials(ctx)
	return h.core.waited("ClientCredentials", err)
}
