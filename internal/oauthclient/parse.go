package oauthclient

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/internal/redact"
)

// maxLifetime caps expires_in values, so that absurd numbers neither
// overflow time.Duration nor make a token live forever.
const maxLifetime = 10 * 365 * 24 * time.Hour

// parseTokenResponse parses an answer of a token endpoint. A 2xx answer is
// read as https://www.rfc-editor.org/rfc/rfc6749#section-5.1, tolerantly:
// expires_in and refresh_expires_in may be numbers or numeric strings,
// optional fields may be missing, scope may be a list, and unknown fields
// are kept in Token.Extra. An answer with an "error" field is an
// *auth.OAuthError (https://www.rfc-editor.org/rfc/rfc6749#section-5.2).
// Anything else — not JSON, empty, a field of the wrong type, no
// access_token — is an *auth.ResponseError. Expiries count from now.
//
// scrub removes the values the request sent from every text of an error
// (providers echo requests); nil removes only token-like runs.
func parseTokenResponse(status int, header http.Header, body []byte, now time.Time, scrub *redact.Scrubber) (*auth.Token, error) {
	return parseTokenResponseFor(status, header, body, now, scrub, false)
}

// parseTokenResponseFor is parseTokenResponse for a request that carried a
// DPoP proof when dpop is set: a token_type of DPoP is accepted then
// (https://www.rfc-editor.org/rfc/rfc9449#section-5), and only then.
func parseTokenResponseFor(status int, header http.Header, body []byte, now time.Time, scrub *redact.Scrubber, dpop bool) (*auth.Token, error) {
	obj, rerr := decodeObject(status, header, body, scrub)
	if oe := oauthError(status, obj, scrub); oe != nil {
		return nil, oe
	}
	if rerr != nil {
		return nil, rerr
	}
	bad := func(reason string, args ...any) error {
		return responseError(status, header, body, fmt.Sprintf(reason, args...), scrub)
	}
	if status < 200 || status > 299 {
		return nil, bad("HTTP status %d without an OAuth error", status)
	}
	tok := &auth.Token{}
	var err error
	var access, refresh, id string
	str := func(key string, dst *string) {
		if err != nil {
			return
		}
		v, ok := obj[key]
		if !ok || v == nil {
			return
		}
		s, isStr := v.(string)
		if !isStr {
			err = bad("%s is %s, want a string", key, typeName(v))
			return
		}
		*dst = s
	}
	str("access_token", &access)
	str("token_type", &tok.TokenType)
	switch tok.TokenType { // held by every token: share the usual spellings
	case "Bearer":
		tok.TokenType = "Bearer"
	case "bearer":
		tok.TokenType = "bearer"
	case "":
	case auth.DPoPScheme:
		if !dpop {
			return nil, fmt.Errorf("%w: the provider issued a DPoP-bound token to a request without a DPoP proof; a handler sends DPoP-bound tokens only when given a DPoP key",
				auth.ErrUnsupportedTokenType)
		}
	default:
		switch {
		case dpop && strings.EqualFold(tok.TokenType, auth.DPoPScheme):
			tok.TokenType = auth.DPoPScheme
		case !strings.EqualFold(tok.TokenType, "bearer"):
			return nil, fmt.Errorf("%w: the provider issued a %q token; authkit sends Bearer and DPoP tokens only",
				auth.ErrUnsupportedTokenType, redact.Text(tok.TokenType, 40, nil))
		}
	}
	str("refresh_token", &refresh)
	str("id_token", &id)
	if err != nil {
		return nil, err
	}
	if access == "" {
		return nil, bad("no access_token")
	}
	tok.AccessToken, tok.RefreshToken, tok.IDToken = auth.NewSecret(access), auth.NewSecret(refresh), auth.NewSecret(id)
	switch v := obj["scope"].(type) {
	case nil:
	case string:
		tok.Scope = v
	case []any:
		parts := make([]string, 0, len(v))
		for _, p := range v {
			s, ok := p.(string)
			if !ok {
				return nil, bad("scope list holds %s, want strings", typeName(p))
			}
			parts = append(parts, s)
		}
		tok.Scope = strings.Join(parts, " ")
	default:
		return nil, bad("scope is %s, want a string", typeName(v))
	}
	// expires_in absent or 0: the lifetime is unknown (as x/oauth2 reads
	// it, not "already expired"); the token is kept for
	// auth.DefaultUnknownLifetime, or until its JWT exp, or a service's
	// rejection.
	if d, ok, e := seconds(obj, "expires_in"); e != nil {
		return nil, bad("%v", e)
	} else if ok && d > 0 {
		tok.Expiry = now.Add(d)
	} else {
		tok.Expiry = now.Add(auth.DefaultUnknownLifetime)
	}
	// Keycloak sends refresh_expires_in 0 for offline tokens that do not expire.
	if d, ok, e := seconds(obj, "refresh_expires_in"); e != nil {
		return nil, bad("%v", e)
	} else if ok && d > 0 {
		tok.RefreshExpiry = now.Add(d)
	}
	for k, v := range obj {
		switch k {
		case "access_token", "token_type", "refresh_token", "id_token", "scope", "expires_in", "refresh_expires_in":
			continue
		}
		if tok.Extra == nil {
			tok.Extra = make(map[string]auth.Secret)
		}
		tok.Extra[k] = auth.NewSecret(extraText(v))
	}
	return tok, nil
}

// extraText is how a JSON value of the answer is kept in Token.Extra: a
// string as itself, any other value as its JSON text.
func extraText(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// parseError returns the OAuth error that body carries, or nil when it is
// not a JSON object with a string "error" field.
func parseError(status int, body []byte, scrub *redact.Scrubber) *auth.OAuthError {
	obj, err := decodeObject(status, nil, body, scrub)
	if err != nil {
		return nil
	}
	return oauthError(status, obj, scrub)
}

func oauthError(status int, obj map[string]any, scrub *redact.Scrubber) *auth.OAuthError {
	code, ok := obj["error"].(string)
	if !ok || code == "" {
		return nil
	}
	e := &auth.OAuthError{Code: redact.Text(code, 100, scrub), StatusCode: status}
	if s, ok := obj["error_description"].(string); ok {
		e.Description = redact.Text(s, 300, scrub)
	}
	if s, ok := obj["error_uri"].(string); ok {
		e.URI = redact.Text(s, 300, scrub)
	}
	return e
}

func decodeObject(status int, header http.Header, body []byte, scrub *redact.Scrubber) (map[string]any, error) {
	trimmed := bytesTrim(body)
	if len(trimmed) == 0 {
		return nil, responseError(status, header, body, "empty body", scrub)
	}
	dec := json.NewDecoder(strings.NewReader(string(trimmed)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, responseError(status, header, body, "body is not JSON", scrub)
	}
	if dec.More() {
		return nil, responseError(status, header, body, "trailing data after the JSON object", scrub)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, responseError(status, header, body, fmt.Sprintf("body is %s, want a JSON object", typeName(v)), scrub)
	}
	return obj, nil
}

// seconds reads a lifetime in seconds, given as a number or a numeric string.
func seconds(obj map[string]any, key string) (time.Duration, bool, error) {
	v, ok := obj[key]
	if !ok || v == nil {
		return 0, false, nil
	}
	var f float64
	var err error
	switch x := v.(type) {
	case json.Number:
		f, err = x.Float64()
	case string:
		if strings.TrimSpace(x) == "" {
			return 0, false, nil
		}
		f, err = json.Number(strings.TrimSpace(x)).Float64()
	default:
		return 0, false, fmt.Errorf("%s is %s, want a number", key, typeName(v))
	}
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false, fmt.Errorf("%s is not a number", key)
	}
	if f < 0 {
		return 0, false, fmt.Errorf("%s is negative", key)
	}
	d := maxLifetime
	if f < maxLifetime.Seconds() {
		d = time.Duration(f * float64(time.Second))
	}
	return d, true, nil
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case json.Number, float64:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func responseError(status int, header http.Header, body []byte, reason string, scrub *redact.Scrubber) *auth.ResponseError {
	return &auth.ResponseError{
		StatusCode:  status,
		ContentType: redact.Text(header.Get("Content-Type"), 100, nil),
		Excerpt:     redact.Excerpt(body, scrub),
		Reason:      reason,
	}
}

// Refreshed completes the answer to a refresh request: when the provider
// sent no new refresh token, the old one stays in use
// (https://www.rfc-editor.org/rfc/rfc6749#section-6), with its expiry.
func Refreshed(old, fresh *auth.Token) *auth.Token {
	if fresh == nil || old == nil || !fresh.RefreshToken.IsZero() {
		return fresh
	}
	fresh.RefreshToken = old.RefreshToken
	if fresh.RefreshExpiry.IsZero() {
		fresh.RefreshExpiry = old.RefreshExpiry
	}
	return fresh
}
