package auth

import (
	"context"
	"net/http"
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
