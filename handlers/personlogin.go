package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/internal/flight"
)

// personLogin is what the handlers that need a person to log in share
// (DeviceCode, BrowserLogin): the engine refreshes silently with the
// refresh token; only Authenticate (or a getter, with LoginOnDemand) runs
// the person's login, one at a time.
type personLogin struct {
	oauthHandler
	kind     string     // the handler's name, for errors
	store    auth.Store // for Logout's other entry of the user
	onDemand bool
	// login runs the person's login and installs its token.
	login func(ctx context.Context) error

	logins flight.Group[struct{}, struct{}] // one login at a time
	obs    auth.Observer                    // nil: nobody
}

// fetch is the engine's silent path: refresh, or ErrLoginRequired.
func (h *personLogin) fetch(ctx context.Context, current *auth.Token) (*auth.Token, error) {
	if !h.core.canRefresh(current) {
		return nil, fmt.Errorf("%w: no usable refresh token", auth.ErrLoginRequired)
	}
	tok, err := h.core.refresh(ctx, current)
	if err != nil {
		return nil, fmt.Errorf("handlers: refresh: %w", loginRequired(err))
	}
	return tok, nil
}

// check verifies the ID token of a refreshed token, after the engine saved it.
func (h *personLogin) check(ctx context.Context, tok *auth.Token) (auth.Identity, error) {
	return h.core.checkIdentity(ctx, tok, h.user)
}

// Authenticate makes the credentials valid: it returns at once when they
// are, then tries the held or stored refresh token, and only when that is
// missing or rejected runs the person's login, with ctx: cancelling ctx
// stops it at once. Concurrent calls share one login.
func (h *personLogin) Authenticate(ctx context.Context) error {
	if h.engine.Valid() {
		return nil
	}
	_, err := h.engine.Credentials(ctx)
	if err == nil {
		h.learnUsername(ctx)
		return nil
	}
	if !errors.Is(err, auth.ErrLoginRequired) {
		return h.core.waited(h.kind, err)
	}
	return h.interactive(ctx)
}

// learnUsername reads the username of a token that came from the store:
// the identity verified when it was obtained, recorded with it; a token
// stored by an older version is verified now.
func (h *personLogin) learnUsername(ctx context.Context) {
	if h.core.username.Load() != nil {
		return
	}
	tok := h.engine.Current()
	switch {
	case tok == nil:
	case !tok.Identity().IsZero():
		id := tok.Identity()
		h.core.subject.Store(&id.Subject)
		h.core.setUsername(id.Username)
	default:
		_, _ = h.core.checkIdentity(ctx, tok, "")
	}
}

// interactive runs one login at a time, on the goroutine and ctx of the
// caller who started it: cancelling that ctx stops it. Callers that find
// one in flight wait for it as long as their own ctx allows, and start their
// own if it ended because its caller gave up. A login that panics ends for
// the others with flight.ErrPanicked.
//
// The login is reported to the Observer as the operation "login" (the span
// authkit.login with otelauth).
func (h *personLogin) interactive(ctx context.Context) error {
	_, err := h.logins.DoHere(ctx, struct{}{}, func(ctx context.Context) (struct{}, error) {
		if h.obs == nil {
			return struct{}{}, h.login(ctx)
		}
		ctx, done := h.obs.Op(ctx, h.kind, "login")
		err := h.login(ctx)
		done(err)
		return struct{}{}, err
	})
	return err
}

// HubRequestHeaders returns the hub's headers; see
// [auth.AuthenticationHandler]. With LoginOnDemand it may run the login.
func (h *personLogin) HubRequestHeaders(ctx context.Context) (http.Header, error) {
	v, err := h.engine.HubRequestHeaders(ctx)
	if err != nil && h.onDemandLogin(ctx, err) {
		return h.engine.HubRequestHeaders(ctx)
	}
	return v, err
}

// AccessManagerRequestHeaders returns the access manager's headers, as
// HubRequestHeaders does.
func (h *personLogin) AccessManagerRequestHeaders(ctx context.Context) (http.Header, error) {
	v, err := h.engine.AccessManagerRequestHeaders(ctx)
	if err != nil && h.onDemandLogin(ctx, err) {
		return h.engine.AccessManagerRequestHeaders(ctx)
	}
	return v, err
}

// MessageServiceMetadata returns the message service's metadata, as
// HubRequestHeaders does.
func (h *personLogin) MessageServiceMetadata(ctx context.Context) (map[string]string, error) {
	v, err := h.engine.MessageServiceMetadata(ctx)
	if err != nil && h.onDemandLogin(ctx, err) {
		return h.engine.MessageServiceMetadata(ctx)
	}
	return v, err
}

// RequestHeaders returns svc's headers for one request (see
// [auth.RequestAuthenticator]), as HubRequestHeaders does.
func (h *personLogin) RequestHeaders(ctx context.Context, svc auth.Service, method string, target *url.URL, nonce string) (http.Header, error) {
	v, err := h.engine.RequestHeaders(ctx, svc, method, target, nonce)
	if err != nil && h.onDemandLogin(ctx, err) {
		return h.engine.RequestHeaders(ctx, svc, method, target, nonce)
	}
	return v, err
}

// RequestMetadata returns the message service's metadata for one RPC (see
// [auth.RequestAuthenticator]), as HubRequestHeaders does.
func (h *personLogin) RequestMetadata(ctx context.Context, audience, fullMethod, nonce string) (map[string]string, error) {
	v, err := h.engine.RequestMetadata(ctx, audience, fullMethod, nonce)
	if err != nil && h.onDemandLogin(ctx, err) {
		return h.engine.RequestMetadata(ctx, audience, fullMethod, nonce)
	}
	return v, err
}

// Token returns a copy of the token being served, as the getters do: with
// LoginOnDemand it may run the login.
func (h *personLogin) Token(ctx context.Context) (*auth.Token, error) {
	v, err := h.engine.Token(ctx)
	if err != nil && h.onDemandLogin(ctx, err) {
		return h.engine.Token(ctx)
	}
	return v, err
}

// Logout ends the login and the other stored login of the same user; see
// oauthHandler.logoutUser. An error wrapping [auth.ErrNotRevoked] means the
// local logout happened but the provider may still accept the tokens.
func (h *personLogin) Logout(ctx context.Context) error { return h.logoutUser(ctx, h.store) }

// onDemandLogin runs the login after err if allowed; it reports whether
// the getter should try again.
func (h *personLogin) onDemandLogin(ctx context.Context, err error) bool {
	if !h.onDemand || !errors.Is(err, auth.ErrLoginRequired) {
		return false
	}
	return h.interactive(ctx) == nil
}
