package auth

import (
	"context"
	"net/http"
	"net/url"
)

// AuthenticationHandler is one way of logging in. It produces the
// credentials of every service of the platform: HTTP headers for the hub and
// for the access manager, gRPC metadata for the message service.
//
// Implementations are safe for concurrent use. The maps returned by the
// getters are shared and read-only: callers copy values out of them (as
// http.Header.Clone or metadata.New do) and never modify them.
type AuthenticationHandler interface {
	// Authenticate makes the credentials valid. It may block: it may call an
	// identity provider, run a device or browser login and prompt a person.
	// It honours ctx. It returns nil at once when the credentials are valid.
	Authenticate(ctx context.Context) error
	// Authenticated reports whether the credentials are valid now, with the
	// refresh margin to spare. It performs no I/O and never blocks.
	Authenticated() bool
	// Username is the identity the credentials belong to, or "" if it is
	// not known yet. It performs no I/O.
	Username() string
	// HubRequestHeaders returns the headers that authenticate a request to
	// the hub. It refreshes silently when it can, never prompts unless the
	// handler allows it (otherwise it returns an error wrapping
	// ErrLoginRequired), and waits no longer than ctx allows.
	HubRequestHeaders(ctx context.Context) (http.Header, error)
	// AccessManagerRequestHeaders is HubRequestHeaders for the access manager.
	AccessManagerRequestHeaders(ctx context.Context) (http.Header, error)
	// MessageServiceMetadata returns the gRPC metadata for the message
	// service, under the same rules as HubRequestHeaders.
	MessageServiceMetadata(ctx context.Context) (map[string]string, error)
}

// Invalidator is implemented by handlers whose credentials a service can
// reject. Session and gRPC interceptors call it after a 401 or
// UNAUTHENTICATED answer, then ask for credentials again.
type Invalidator interface {
	// Invalidate reports that svc rejected a credential value that the
	// handler produced (a header or metadata value, e.g. "Bearer eyJ...").
	// The handler drops its current credential only if that value belongs
	// to it, so that many requests rejected at once cause one new fetch,
	// not one each; an empty value drops the current credential
	// unconditionally. A handler bounds how often rejections make it fetch
	// (see [Engine.Invalidate]). It never blocks.
	Invalidate(svc Service, rejected string)
}

// Service names a service of the platform, for [Invalidator], logs and
// error messages.
type Service string

// The platform's services.
const (
	ServiceHub            Service = "hub"
	ServiceAccessManager  Service = "access manager"
	ServiceMessageService Service = "message service"
)

// Handler makes an [AuthenticationHandler] of e, for a grant of one's own
// (see [NewEngine]): Authenticate fetches through e, the getters serve e's
// credentials, and Username reports username. The handler also offers
// e's Invalidate, Token, Logout, Stats and Close.
func Handler(e *Engine, username string) *EngineHandler {
	return &EngineHandler{e: e, username: username}
}

// EngineHandler is an [AuthenticationHandler] made of an [Engine] by
// [Handler]. It is safe for concurrent use.
type EngineHandler struct {
	e        *Engine
	username string
}

var (
	_ AuthenticationHandler = (*EngineHandler)(nil)
	_ Invalidator           = (*EngineHandler)(nil)
	_ RequestAuthenticator  = (*EngineHandler)(nil)
)

// Authenticate makes the credentials valid, fetching if needed; it returns
// nil at once while they are.
func (h *EngineHandler) Authenticate(ctx context.Context) error {
	_, err := h.e.Credentials(ctx)
	return err
}

// Authenticated reports whether the credentials are valid now, margin
// included. It performs no I/O.
func (h *EngineHandler) Authenticated() bool { return h.e.Valid() }

// Username returns the username given to [Handler].
func (h *EngineHandler) Username() string { return h.username }

// HubRequestHeaders returns the hub's headers; see [AuthenticationHandler].
func (h *EngineHandler) HubRequestHeaders(ctx context.Context) (http.Header, error) {
	return h.e.HubRequestHeaders(ctx)
}

// AccessManagerRequestHeaders returns the access manager's headers.
func (h *EngineHandler) AccessManagerRequestHeaders(ctx context.Context) (http.Header, error) {
	return h.e.AccessManagerRequestHeaders(ctx)
}

// MessageServiceMetadata returns the message service's metadata.
func (h *EngineHandler) MessageServiceMetadata(ctx context.Context) (map[string]string, error) {
	return h.e.MessageServiceMetadata(ctx)
}

// RequestHeaders returns svc's headers for one request; see
// [RequestAuthenticator].
func (h *EngineHandler) RequestHeaders(ctx context.Context, svc Service, method string, target *url.URL, nonce string) (http.Header, error) {
	return h.e.RequestHeaders(ctx, svc, method, target, nonce)
}

// RequestMetadata returns the message service's metadata for one RPC; see
// [RequestAuthenticator].
func (h *EngineHandler) RequestMetadata(ctx context.Context, audience, fullMethod, nonce string) (map[string]string, error) {
	return h.e.RequestMetadata(ctx, audience, fullMethod, nonce)
}

// Invalidate reports a rejected credential; see [Engine.Invalidate].
func (h *EngineHandler) Invalidate(svc Service, rejected string) { h.e.Invalidate(svc, rejected) }

// Token returns a copy of the token being served, fetching one if needed.
func (h *EngineHandler) Token(ctx context.Context) (*Token, error) { return h.e.Token(ctx) }

// Logout ends the login; see [Engine.Logout].
func (h *EngineHandler) Logout(ctx context.Context) error { return h.e.Logout(ctx) }

// Stats returns what the engine did so far.
func (h *EngineHandler) Stats() Stats { return h.e.Stats() }

// Close stops the engine's background work; see [Engine.Close].
func (h *EngineHandler) Close() error { return h.e.Close() }
