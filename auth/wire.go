package auth

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
)

// Field says how a credential is written: under which header or metadata
// key, and with which prefix before the value.
//
// The zero Field means "the default for this place". A Field with a Name is
// used exactly as given: Field{Name: "token"} writes the bare token under the
// key "token"; Field{Name: "authorization", Prefix: "Bearer "} writes the
// standard form.
type Field struct {
	// Name is the header name or the gRPC metadata key.
	Name string
	// Prefix comes before the value, e.g. "Bearer ".
	Prefix string
}

// Default wire names, as the standards use them
// (https://www.rfc-editor.org/rfc/rfc6750#section-2.1).
const (
	DefaultHTTPHeader   = "Authorization"
	DefaultMetadataKey  = "authorization"
	DefaultBearerPrefix = "Bearer "
	DefaultAPIKeyIDName = "x-api-key-id"
	DefaultAPIKeyName   = "x-api-key"
)

// Wire holds the wire format of each service. The zero value is the
// standard: "Authorization: Bearer <t>" for the hub and the access manager,
// metadata "authorization: Bearer <t>" for the message service, and
// "x-api-key-id" / "x-api-key" for API keys.
type Wire struct {
	// Hub is the bearer header for the hub.
	Hub Field
	// AccessManager is the bearer header for the access manager.
	AccessManager Field
	// MessageService is the bearer metadata entry for the message service.
	MessageService Field
	// APIKeyIDName names the header and metadata key of an API key's id.
	APIKeyIDName string
	// APIKeyName names the header and metadata key of an API key's secret.
	APIKeyName string
}

// WithDefaults returns w with every unset name filled in.
func (w Wire) WithDefaults() Wire {
	def := Field{Name: DefaultHTTPHeader, Prefix: DefaultBearerPrefix}
	if w.Hub.Name == "" {
		w.Hub = def
	}
	if w.AccessManager.Name == "" {
		w.AccessManager = def
	}
	if w.MessageService.Name == "" {
		w.MessageService = Field{Name: DefaultMetadataKey, Prefix: DefaultBearerPrefix}
	}
	if w.APIKeyIDName == "" {
		w.APIKeyIDName = DefaultAPIKeyIDName
	}
	if w.APIKeyName == "" {
		w.APIKeyName = DefaultAPIKeyName
	}
	return w
}

// Validate reports names that cannot be sent: empty or invalid header
// names, metadata keys that are not lowercase, or reserved gRPC keys.
func (w Wire) Validate() error {
	w = w.WithDefaults()
	for _, n := range []string{w.Hub.Name, w.AccessManager.Name, w.APIKeyIDName, w.APIKeyName} {
		if !validHeaderName(n) {
			return configError("%q is not a valid HTTP header name", n)
		}
	}
	for _, n := range []string{w.MessageService.Name, w.APIKeyIDName, w.APIKeyName} {
		if !validMetadataKey(strings.ToLower(n)) {
			return configError("%q is not a valid gRPC metadata key", n)
		}
	}
	if w.MessageService.Name != strings.ToLower(w.MessageService.Name) {
		return configError("gRPC metadata key %q must be lowercase", w.MessageService.Name)
	}
	return nil
}

// defaultWire is the zero Wire with its defaults filled in.
var defaultWire = Wire{}.WithDefaults()

// Credentials are what one token is sent as to each service: the hub's and
// the access manager's headers and the message service's gRPC metadata.
// Each service's values are prepared on its first use and then shared,
// read-only, by every caller until the token is replaced: a read allocates
// nothing, and a handler that talks to one service never holds the others'.
type Credentials struct {
	// Token is the token the values carry.
	Token *Token

	wire  *Wire  // with defaults filled in
	value Secret // the hub's prefix and the token: shared by every service with that prefix

	hub, am atomic.Pointer[http.Header]
	ms      atomic.Pointer[map[string]string]
}

// Bearer returns the credentials that carry tok's access token as a bearer
// token, named as w says (https://www.rfc-editor.org/rfc/rfc6750#section-2.1);
// a DPoP-bound token (one with a DPoPKey and token type DPoP) is sent
// with the "DPoP " prefix where w says "Bearer ".
func (w Wire) Bearer(tok *Token) (*Credentials, error) {
	w = w.WithDefaults()
	return bearer(&w, tok, false)
}

// bearer is Bearer for a Wire whose defaults are filled in. When the engine
// owns tok, its access token is made to share the prefixed value's bytes,
// so that a token is held once, not twice.
func bearer(w *Wire, tok *Token, owned bool) (*Credentials, error) {
	if tok == nil || tok.AccessToken.IsZero() {
		return nil, fmt.Errorf("%w: no access token", ErrMalformedToken)
	}
	raw := tok.AccessToken.Reveal()
	if strings.ContainsAny(raw, "\r\n\x00") {
		return nil, fmt.Errorf("%w: access token contains control characters", ErrMalformedToken)
	}
	switch {
	case dpopBound(tok):
		w = dpopWire(w)
	case strings.EqualFold(tok.TokenType, DPoPScheme):
		return nil, fmt.Errorf("%w: a DPoP token without its DPoP key cannot be sent (neither as DPoP, which needs a proof, nor as Bearer)", ErrUnsupportedTokenType)
	}
	value := w.Hub.Prefix + raw
	if owned {
		tok.AccessToken = NewSecret(value[len(w.Hub.Prefix):])
	}
	return &Credentials{Token: tok, wire: w, value: NewSecret(value)}, nil
}

// Hub returns the hub's request headers. The map is shared and read-only.
func (c *Credentials) Hub() http.Header {
	if h := c.hub.Load(); h != nil {
		return *h
	}
	h := http.Header{http.CanonicalHeaderKey(c.wire.Hub.Name): {c.value.Reveal()}}
	if c.hub.CompareAndSwap(nil, &h) {
		return h
	}
	return *c.hub.Load()
}

// AccessManager returns the access manager's request headers: the hub's
// map itself when both services use the same field. The map is shared and
// read-only.
func (c *Credentials) AccessManager() http.Header {
	if h := c.am.Load(); h != nil {
		return *h
	}
	w := c.wire
	var h http.Header
	if http.CanonicalHeaderKey(w.AccessManager.Name) == http.CanonicalHeaderKey(w.Hub.Name) && w.AccessManager.Prefix == w.Hub.Prefix {
		h = c.Hub()
	} else {
		h = http.Header{http.CanonicalHeaderKey(w.AccessManager.Name): {c.valueFor(w.AccessManager.Prefix)}}
	}
	if c.am.CompareAndSwap(nil, &h) {
		return h
	}
	return *c.am.Load()
}

// MessageService returns the message service's gRPC metadata. The map is
// shared and read-only.
func (c *Credentials) MessageService() map[string]string {
	if m := c.ms.Load(); m != nil {
		return *m
	}
	m := map[string]string{c.wire.MessageService.Name: c.valueFor(c.wire.MessageService.Prefix)}
	if c.ms.CompareAndSwap(nil, &m) {
		return m
	}
	return *c.ms.Load()
}

// valueFor returns the token with prefix, sharing the hub's string when the
// prefixes are equal.
func (c *Credentials) valueFor(prefix string) string {
	if prefix == c.wire.Hub.Prefix {
		return c.value.Reveal()
	}
	return prefix + c.Token.AccessToken.Reveal()
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}

func validMetadataKey(s string) bool {
	if s == "" || strings.HasPrefix(s, "grpc-") || strings.HasSuffix(s, "-bin") || s[0] == ':' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
