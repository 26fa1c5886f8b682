package handlers

import (
	"context"
	"net/http"
	"net/url"

	"github.com/authkit-go/authkit/auth"
)

// tokenHandler is what every handler with an expiring token exports from
// its engine: the getters, Invalidate, Token, Logout, Stats and Close. The
// engine itself stays unexported, so that nothing reaches around a
// handler's own checks (a login installs tokens only through the handler).
type tokenHandler struct {
	engine *auth.Engine
}

// Authenticated reports whether a token is valid now, margin included. It
// performs no I/O.
func (h *tokenHandler) Authenticated() bool { return h.engine.Valid() }

// HubRequestHeaders returns the hub's headers; see
// [auth.AuthenticationHandler].
func (h *tokenHandler) HubRequestHeaders(ctx context.Context) (http.Header, error) {
	return h.engine.HubRequestHeaders(ctx)
}

// AccessManagerRequestHeaders returns the access manager's headers; see
// [auth.AuthenticationHandler].
func (h *tokenHandler) AccessManagerRequestHeaders(ctx context.Context) (http.Header, error) {
	return h.engine.AccessManagerRequestHeaders(ctx)
}

// MessageServiceMetadata returns the message service's metadata; see
// [auth.AuthenticationHandler].
func (h *tokenHandler) MessageServiceMetadata(ctx context.Context) (map[string]string, error) {
	return h.engine.MessageServiceMetadata(ctx)
}

// RequestHeaders returns svc's headers for one request: with a
// DPoP-bound token, a new proof beside it; see [auth.RequestAuthenticator].
func (h *tokenHandler) RequestHeaders(ctx context.Context, svc auth.Service, method string, target *url.URL, nonce string) (http.Header, error) {
	return h.engine.RequestHeaders(ctx, svc, method, target, nonce)
}

// RequestMetadata returns the message service's metadata for one RPC;
// see [auth.RequestAuthenticator].
func (h *tokenHandler) RequestMetadata(ctx context.Context, audience, fullMethod, nonce string) (map[string]string, error) {
	return h.engine.RequestMetadata(ctx, audience, fullMethod, nonce)
}

// Token returns a copy of the token being served, refreshing it silently
// when needed under the same rules as the getters; [auth.TokenSource]
// turns it into an oauth2.TokenSource.
func (h *tokenHandler) Token(ctx context.Context) (*auth.Token, error) {
	return h.engine.Token(ctx)
}

// Invalidate reports that svc rejected a credential this handler produced;
// see [auth.Invalidator] and [auth.Engine.Invalidate].
func (h *tokenHandler) Invalidate(svc auth.Service, rejected string) {
	h.engine.Invalidate(svc, rejected)
}

// Logout ends the login: the token is dropped, revoked at the provider
// when the handler can (see [auth.Engine.Logout]) and deleted from the
// store, under the store's lock. A refresh already running can neither
// install nor save its token. An error wrapping [auth.ErrNotRevoked] means
// the local logout happened but the provider may still accept the token.
func (h *tokenHandler) Logout(ctx context.Context) error { return h.engine.Logout(ctx) }

// Stats returns what the handler's engine did so far.
func (h *tokenHandler) Stats() auth.Stats { return h.engine.Stats() }

// Close stops the background refresh and waits for it to end. Calls after
// Close return [auth.ErrClosed].
func (h *tokenHandler) Close() error { return h.engine.Close() }
