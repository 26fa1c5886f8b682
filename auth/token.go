package auth

import (
	"time"
)

// DefaultUnknownLifetime is how long a token is kept when its token
// response says nothing of its lifetime (expires_in absent or 0, which
// x/oauth2 also reads as "unknown", never as "already expired"): long
// enough not to hammer the provider, short enough that a token revoked in
// silence is replaced. A JWT's exp claim, when readable, caps it, and a
// service's rejection replaces the token at once.
const DefaultUnknownLifetime = time.Hour

// Token is an OAuth 2.0 token set as returned by a token endpoint
// (https://www.rfc-editor.org/rfc/rfc6749#section-5.1), or a credential
// supplied by the application.
//
// Its credentials are [Secret]s: a Token prints, logs and encodes without
// them, under every fmt verb, slog handler and encoding/json. Token stores
// keep tokens in a format of their own.
type Token struct {
	// AccessToken is the credential sent to services.
	AccessToken Secret `json:"access_token"`
	// TokenType is the type the provider named, usually "Bearer".
	TokenType string `json:"token_type,omitempty"`
	// RefreshToken, when set, obtains a new access token without the user.
	RefreshToken Secret `json:"refresh_token,omitzero"`
	// IDToken is the OpenID Connect ID token, if one was issued.
	IDToken Secret `json:"id_token,omitzero"`
	// Scope is the space-separated scope the provider granted.
	Scope string `json:"scope,omitempty"`
	// Expiry is when AccessToken stops being valid; zero means it does not expire.
	Expiry time.Time `json:"expiry,omitzero"`
	// RefreshExpiry is when RefreshToken stops being valid; zero means unknown.
	RefreshExpiry time.Time `json:"refresh_expiry,omitzero"`
	// Extra holds the other fields of the token response: a JSON string as
	// itself, any other JSON value as its JSON text. Values may be secrets,
	// so they are Secrets too.
	Extra map[string]Secret `json:"extra,omitempty"`
}

// ValidAt reports whether the access token is set and still valid at now
// with margin to spare. A token without expiry is valid until replaced.
func (t *Token) ValidAt(now time.Time, margin time.Duration) bool {
	if t == nil || t.AccessToken.IsZero() {
		return false
	}
	return t.Expiry.IsZero() || now.Add(margin).Before(t.Expiry)
}

// RefreshUsableAt reports whether the token carries a refresh token that has
// not expired at now (as far as the provider told us).
func (t *Token) RefreshUsableAt(now time.Time) bool {
	if t == nil || t.RefreshToken.IsZero() {
		return false
	}
	return t.RefreshExpiry.IsZero() || now.Before(t.RefreshExpiry)
}

// Clone returns a copy of t that shares nothing mutable with it.
func (t *Token) Clone() *Token {
	if t == nil {
		return nil
	}
	c := *t
	if t.Extra != nil {
		c.Extra = make(map[string]Secret, len(t.Extra))
		for k, v := range t.Extra {
			c.Extra[k] = v
		}
	}
	return &c
}
