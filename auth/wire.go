package auth

import (
	"fmt"
	"net/http"
	"strings"
	"time"
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

// Credentials is what a handler sends to each service, prepared once per
// credential so that the getters only hand out shared, read-only values.
type Credentials struct {
	// Hub are the hub's request headers.
	Hub http.Header
	// AccessManager are the access manager's request headers.
	AccessManager http.Header
	// MessageService is the message service's gRPC metadata.
	MessageService map[string]string
	// Token is the token the values were made from; nil for API keys.
	Token *Token
	// Expiry is when the values stop being valid; zero for never.
	Expiry time.Time
}

// Bearer prepares the credentials that carry tok's access token as a bearer
// token, named as w says.
func (w Wire) Bearer(tok *Token) (*Credentials, error) {
	if tok == nil || tok.AccessToken == "" {
		return nil, fmt.Errorf("%w: no access token", ErrMalformedToken)
	}
	if strings.ContainsAny(tok.AccessToken, "\r\n\x00") {
		return nil, fmt.Errorf("%w: access token contains control characters", ErrMalformedToken)
	}
	w = w.WithDefaults()
	c := &Credentials{
		Hub:            http.Header{http.CanonicalHeaderKey(w.Hub.Name): {w.Hub.Prefix + tok.AccessToken}},
		AccessManager:  http.Header{http.CanonicalHeaderKey(w.AccessManager.Name): {w.AccessManager.Prefix + tok.AccessToken}},
		MessageService: map[string]string{w.MessageService.Name: w.MessageService.Prefix + tok.AccessToken},
		Token:          tok,
		Expiry:         tok.Expiry,
	}
	return c, nil
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
