// Package jwtclaims reads the claims of a compact JWT WITHOUT verifying it:
// for a token from a party the program already trusts (the token endpoint
// over TLS, the application's own login), to learn what the token says of
// itself — when it expires, whom it names — never to decide whether to
// trust it. The services that receive the token verify it. authkit reads
// unverified claims only here.
package jwtclaims

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"time"
)

// errNotJWT means the string is not a compact JWT with a JSON object as its
// claims. Its message never quotes the token.
var errNotJWT = errors.New("not a compact JWT")

// errBadExp means the "exp" claim is present but not a number.
var errBadExp = errors.New("the JWT's exp claim is not a number")

// Claims are a JWT's claims as decoded JSON (numbers as json.Number).
type Claims map[string]any

// Decode returns the claims of raw, unverified. The signature algorithm
// does not matter: a JWT signed with any algorithm is decoded.
func Decode(raw string) (Claims, error) {
	header, rest, ok := strings.Cut(raw, ".")
	if !ok {
		return nil, errNotJWT
	}
	payload, _, ok := strings.Cut(rest, ".")
	if !ok || payload == "" {
		return nil, errNotJWT
	}
	var h map[string]any
	if decodeSegment(header, &h) != nil || h == nil {
		return nil, errNotJWT
	}
	var c Claims
	if decodeSegment(payload, &c) != nil || c == nil {
		return nil, errNotJWT
	}
	return c, nil
}

// decodeSegment decodes one base64url segment holding a JSON object.
func decodeSegment(seg string, v any) error {
	data, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(seg, "="))
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return dec.Decode(v)
}

// Expiry returns the "exp" claim (https://www.rfc-editor.org/rfc/rfc7519#section-4.1.4),
// fractions of a second included, or the zero time when there is none.
func (c Claims) Expiry() (time.Time, error) {
	t, ok := c.time("exp")
	if !ok {
		return time.Time{}, errBadExp
	}
	return t, nil
}

// IssuedAt returns the "iat" claim (https://www.rfc-editor.org/rfc/rfc7519#section-4.1.6),
// or the zero time when there is none or it is not a number.
func (c Claims) IssuedAt() time.Time {
	t, _ := c.time("iat")
	return t
}

// time reads a NumericDate claim; ok is false when it is not a number.
func (c Claims) time(name string) (time.Time, bool) {
	v, ok := c[name]
	if !ok || v == nil {
		return time.Time{}, true
	}
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e11 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), true
}

// String returns the string claim name, or "" when it is absent or not a
// string.
func (c Claims) String(name string) string {
	s, _ := c[name].(string)
	return s
}

// Times returns the "iat" and "exp" of raw when raw is a JWT (each zero when
// absent or malformed); ok is false for an opaque token.
func Times(raw string) (iat, exp time.Time, ok bool) {
	c, err := Decode(raw)
	if err != nil {
		return time.Time{}, time.Time{}, false
	}
	exp, _ = c.Expiry()
	return c.IssuedAt(), exp, true
}
