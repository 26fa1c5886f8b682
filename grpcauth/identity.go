package grpcauth

import (
	"context"
	"time"
)

// Identity is the caller a validator recognised.
type Identity struct {
	// Subject is the JWT "sub" claim, or the API key's subject (its id if
	// the lookup named none).
	Subject string
	// Username is the JWT's username claim (JWTConfig.UsernameClaim) or
	// the API key's username; "" if unknown.
	Username string
	// Issuer is the JWT "iss" claim; "" for API keys.
	Issuer string
	// KeyID is the API key's id; "" for JWTs.
	KeyID string
	// Claims are all the JWT's claims; nil for API keys. Read-only.
	Claims map[string]any
	// Expiry is when the JWT expires; zero for API keys.
	Expiry time.Time
}

type identityKey struct{}

// ContextWithIdentity returns a copy of ctx that carries id. The server
// interceptors call it; tests of service methods can too.
func ContextWithIdentity(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// IdentityFromContext returns the caller's identity that the server
// interceptors placed in ctx, and whether there is one. Methods marked
// public (ServerConfig.Public) run without one.
func IdentityFromContext(ctx context.Context) (*Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(*Identity)
	return id, ok && id != nil
}
