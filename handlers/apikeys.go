package handlers

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/authkit-go/authkit/auth"
)

// APIKeysConfig configures [APIKeys]. KeyID, Key and Username are required.
type APIKeysConfig struct {
	// KeyID identifies the key. It is not a secret. Required.
	KeyID string
	// Key is the secret. Required.
	Key auth.Secret
	// Username is the identity the key belongs to, reported by
	// [APIKeys.Username]. Required.
	Username string
	// Wire names the headers and metadata keys: Wire.APIKeyIDName and
	// Wire.APIKeyName, by default "x-api-key-id" and "x-api-key". HTTP
	// headers are sent in canonical form ("X-Api-Key"), gRPC metadata keys
	// in lower case ("x-api-key"). The bearer fields of Wire are not used.
	Wire auth.Wire
	// HubValuesBeforeColon makes the hub receive each value (key id and
	// key) only up to its first ':', as the modelled platform expects,
	// while the access manager and the message service receive the whole
	// value. A value without ':' is sent whole everywhere. Zero (false)
	// sends the whole values to every service.
	HubValuesBeforeColon bool
}

// APIKeys authenticates with a fixed API key: a key id and a key, sent as
// headers to the hub and the access manager and as gRPC metadata to the
// message service. The values are prepared once, at construction: the
// getters hand out the same read-only maps every time, without allocating.
// Nothing expires, so Authenticate does nothing and Authenticated is always
// true. It never prints its key.
type APIKeys struct {
	user string
	// creds is behind an atomic pointer, which fmt prints as an address
	// under every verb (a plain pointer to a struct is printed in full
	// under %s and %q).
	creds atomic.Pointer[apiKeyCredentials]
}

// apiKeyCredentials are the prepared, read-only values of each service.
type apiKeyCredentials struct {
	hub, am http.Header
	ms      map[string]string
}

var (
	_ auth.AuthenticationHandler = (*APIKeys)(nil)
	_ io.Closer                  = (*APIKeys)(nil)
)

// NewAPIKeys validates cfg and prepares the headers and metadata. Errors wrap
// [auth.ErrInvalidConfig].
func NewAPIKeys(cfg APIKeysConfig) (*APIKeys, error) {
	key := cfg.Key.Reveal()
	for _, f := range []struct{ name, value string }{
		{"KeyID", cfg.KeyID},
		{"Key", key},
		{"Username", cfg.Username},
	} {
		if f.value == "" {
			return nil, auth.ConfigError("handlers: APIKeysConfig.%s is required", f.name)
		}
	}
	if !isVisibleASCII(cfg.KeyID) {
		return nil, auth.ConfigError("handlers: APIKeysConfig.KeyID must be printable ASCII without spaces or line breaks")
	}
	if !isVisibleASCII(key) {
		// Never quote the key: it is the secret.
		return nil, auth.ConfigError("handlers: APIKeysConfig.Key must be printable ASCII without spaces or line breaks")
	}
	if strings.ContainsAny(cfg.Username, "\r\n\x00") {
		return nil, auth.ConfigError("handlers: APIKeysConfig.Username must not contain line breaks")
	}
	if err := cfg.Wire.Validate(); err != nil {
		return nil, err
	}
	w := cfg.Wire.WithDefaults()
	if strings.EqualFold(w.APIKeyIDName, w.APIKeyName) {
		return nil, auth.ConfigError("handlers: Wire.APIKeyIDName and Wire.APIKeyName are both %q; they must differ", w.APIKeyName)
	}
	idName, keyName := http.CanonicalHeaderKey(w.APIKeyIDName), http.CanonicalHeaderKey(w.APIKeyName)
	hubID, hubKey := cfg.KeyID, key
	if cfg.HubValuesBeforeColon {
		hubID, _, _ = strings.Cut(hubID, ":")
		hubKey, _, _ = strings.Cut(hubKey, ":")
		if hubID == "" || hubKey == "" {
			return nil, auth.ConfigError("handlers: with HubValuesBeforeColon, KeyID and Key must not start with ':' (the hub would get an empty value)")
		}
	}
	h := &APIKeys{user: cfg.Username}
	h.creds.Store(&apiKeyCredentials{
		hub: http.Header{idName: {hubID}, keyName: {hubKey}},
		am:  http.Header{idName: {cfg.KeyID}, keyName: {key}},
		ms: map[string]string{
			strings.ToLower(w.APIKeyIDName): cfg.KeyID,
			strings.ToLower(w.APIKeyName):   key,
		},
	})
	return h, nil
}

// Authenticate does nothing: an API key needs no login. It returns nil.
func (h *APIKeys) Authenticate(context.Context) error { return nil }

// Authenticated reports true: an API key does not expire on the client side.
func (h *APIKeys) Authenticated() bool { return true }

// Username returns the configured username.
func (h *APIKeys) Username() string { return h.user }

// HubRequestHeaders returns the hub's headers, prepared at construction. The
// map is shared and read-only.
func (h *APIKeys) HubRequestHeaders(context.Context) (http.Header, error) {
	return h.creds.Load().hub, nil
}

// AccessManagerRequestHeaders returns the access manager's headers, prepared
// at construction. The map is shared and read-only.
func (h *APIKeys) AccessManagerRequestHeaders(context.Context) (http.Header, error) {
	return h.creds.Load().am, nil
}

// MessageServiceMetadata returns the message service's gRPC metadata (lower
// case keys), prepared at construction. The map is shared and read-only.
func (h *APIKeys) MessageServiceMetadata(context.Context) (map[string]string, error) {
	return h.creds.Load().ms, nil
}

// isVisibleASCII reports whether s is non-empty visible ASCII (0x21-0x7e):
// what both an HTTP field value and a gRPC ASCII metadata value accept, and
// no room for header injection.
func isVisibleASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return s != ""
}

// Close does nothing: API keys hold no background work. It makes APIKeys
// an io.Closer like every other handler, so that code closing whatever
// handler it was given needs no type switch.
func (h *APIKeys) Close() error { return nil }
