package handlers

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/authkit-go/authkit/auth"
)

// Token types of RFC 8693 §3.
const (
	TokenTypeJWT          = "urn:ietf:params:oauth:token-type:jwt"
	TokenTypeAccessToken  = "urn:ietf:params:oauth:token-type:access_token"
	TokenTypeIDToken      = "urn:ietf:params:oauth:token-type:id_token"
	TokenTypeRefreshToken = "urn:ietf:params:oauth:token-type:refresh_token"
)

// GrantTokenExchange is RFC 8693's grant_type.
const GrantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"

// TokenExchangeConfig configures [TokenExchange]
// (https://www.rfc-editor.org/rfc/rfc8693): a token the workload holds —
// its platform's identity token, or a token for another service — is
// exchanged for an access token of this provider. ClientID and TokenURL
// (or Issuer) are required; the client authenticates as OAuthConfig says
// (a secret, private_key_jwt, or none when the provider allows). Scopes,
// Audiences and Resources are sent as scope, audience and resource.
type TokenExchangeConfig struct {
	OAuthConfig
	// SubjectToken supplies the token to exchange, anew for every
	// exchange: [FederatedTokenFile], [GitHubActionsToken], [CommandToken]
	// or a JWTSourceFunc of your own. Required.
	SubjectToken JWTSource
	// SubjectTokenType is its type; empty means TokenTypeJWT.
	SubjectTokenType string
	// ActorToken, if set, is the party acting for the subject
	// (delegation, RFC 8693 §1.1), of type ActorTokenType (empty means
	// TokenTypeJWT).
	ActorToken     JWTSource
	ActorTokenType string
	// RequestedTokenType is sent as requested_token_type when set:
	// TokenTypeAccessToken or TokenTypeJWT (the handler sends what it gets
	// as a bearer token, so a refresh token or an ID token is refused).
	RequestedTokenType string
}

// JWTSourceFunc is a JWTSource of a function.
type JWTSourceFunc func(ctx context.Context) (auth.Secret, error)

// JWT calls f.
func (f JWTSourceFunc) JWT(ctx context.Context) (auth.Secret, error) { return f(ctx) }

// TokenExchange exchanges a subject token for an access token, again
// before the access token expires (there is no refresh token: the subject
// token is read and exchanged anew). It is safe for concurrent use; Close
// it when done.
type TokenExchange struct {
	oauthHandler
	subject, actor         JWTSource
	subjectType, actorType string
	requested              string
}

var _ auth.AuthenticationHandler = (*TokenExchange)(nil)

// NewTokenExchange validates cfg and returns the handler. It performs no
// I/O: the first exchange happens on first use.
func NewTokenExchange(cfg TokenExchangeConfig) (*TokenExchange, error) {
	bad := func(format string, args ...any) error {
		return auth.ConfigError("handlers: TokenExchange: "+format, args...)
	}
	if cfg.SubjectToken == nil {
		return nil, bad("SubjectToken is required")
	}
	switch cfg.RequestedTokenType {
	case "", TokenTypeAccessToken, TokenTypeJWT:
	default:
		return nil, bad("RequestedTokenType %q: the handler sends the issued token as a bearer token; ask for %s or %s",
			cfg.RequestedTokenType, TokenTypeAccessToken, TokenTypeJWT)
	}
	h := &TokenExchange{subject: cfg.SubjectToken, actor: cfg.ActorToken,
		subjectType: cfg.SubjectTokenType, actorType: cfg.ActorTokenType, requested: cfg.RequestedTokenType}
	if h.subjectType == "" {
		h.subjectType = TokenTypeJWT
	}
	if h.actorType == "" {
		h.actorType = TokenTypeJWT
	}
	if err := h.core.init("TokenExchange", cfg.OAuthConfig, nil); err != nil {
		return nil, err
	}
	var err error
	if h.engine, err = h.core.newEngine("TokenExchange", cfg.OAuthConfig, h.fetch, nil, ""); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *TokenExchange) fetch(ctx context.Context, _ *auth.Token) (*auth.Token, error) {
	subject, err := h.subject.JWT(ctx)
	if err != nil {
		return nil, fmt.Errorf("handlers: token exchange: subject token: %w", err)
	}
	form := url.Values{
		"grant_type":         {GrantTokenExchange},
		"subject_token":      {subject.Reveal()},
		"subject_token_type": {h.subjectType},
	}
	if h.actor != nil {
		actor, err := h.actor.JWT(ctx)
		if err != nil {
			return nil, fmt.Errorf("handlers: token exchange: actor token: %w", err)
		}
		form.Set("actor_token", actor.Reveal())
		form.Set("actor_token_type", h.actorType)
	}
	if h.requested != "" {
		form.Set("requested_token_type", h.requested)
	}
	tok, err := h.core.grant(ctx, form)
	if err != nil {
		return nil, fmt.Errorf("handlers: token exchange: %w", err)
	}
	// RFC 8693 §2.2.1: issued_token_type is required; the issued token is
	// in access_token whatever its type. Only a token the services accept
	// as a bearer token is usable here.
	switch it := tok.Extra["issued_token_type"].Reveal(); it {
	case TokenTypeAccessToken, TokenTypeJWT, "":
	default:
		return nil, fmt.Errorf("%w: the provider issued a %s, which is not an access token", auth.ErrUnsupportedTokenType, it)
	}
	tok.RefreshToken, tok.RefreshExpiry = auth.Secret{}, time.Time{} // the subject token is exchanged again
	return tok, nil
}

// Authenticate exchanges the subject token unless a valid token is held.
func (h *TokenExchange) Authenticate(ctx context.Context) error {
	_, err := h.engine.Credentials(ctx)
	return h.core.waited("TokenExchange", err)
}
