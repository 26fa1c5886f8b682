package auth

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"
)

// Token is an OAuth 2.0 token set as returned by a token endpoint
// (https://www.rfc-editor.org/rfc/rfc6749#section-5.1), or a credential
// supplied by the application.
//
// Token never prints its secrets: String, GoString, Format (every fmt verb)
// and LogValue show only whether each secret is set. Its JSON form, used by
// the stores, does carry the secrets.
type Token struct {
	// AccessToken is the credential sent to services.
	AccessToken string `json:"access_token"`
	// TokenType is the type the provider named, usually "Bearer".
	TokenType string `json:"token_type,omitempty"`
	// RefreshToken, when set, obtains a new access token without the user.
	RefreshToken string `json:"refresh_token,omitempty"`
	// IDToken is the OpenID Connect ID token, if one was issued.
	IDToken string `json:"id_token,omitempty"`
	// Scope is the space-separated scope the provider granted.
	Scope string `json:"scope,omitempty"`
	// Expiry is when AccessToken stops being valid; zero means it does not expire.
	Expiry time.Time `json:"expiry,omitzero"`
	// RefreshExpiry is when RefreshToken stops being valid; zero means unknown.
	RefreshExpiry time.Time `json:"refresh_expiry,omitzero"`
	// Extra holds further fields of the token response. Values may be
	// secrets; they are never printed, only their keys.
	Extra map[string]any `json:"extra,omitempty"`
}

// ValidAt reports whether the access token is set and still valid at now
// with margin to spare. A token without expiry is valid until replaced.
func (t *Token) ValidAt(now time.Time, margin time.Duration) bool {
	if t == nil || t.AccessToken == "" {
		return false
	}
	return t.Expiry.IsZero() || now.Add(margin).Before(t.Expiry)
}

// RefreshUsableAt reports whether the token carries a refresh token that has
// not expired at now (as far as the provider told us).
func (t *Token) RefreshUsableAt(now time.Time) bool {
	if t == nil || t.RefreshToken == "" {
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
	c.Extra = maps.Clone(t.Extra)
	return &c
}

// String describes the token without its secrets. The rendering methods
// have value receivers so that a Token value is as safe to print as a
// pointer; a nil *Token prints as fmt prints nil.
func (t Token) String() string {
	var b strings.Builder
	b.WriteString("Token{type=")
	if t.TokenType == "" {
		b.WriteString("-")
	} else {
		b.WriteString(t.TokenType)
	}
	b.WriteString(" access=")
	b.WriteString(redacted(t.AccessToken))
	b.WriteString(" refresh=")
	b.WriteString(redacted(t.RefreshToken))
	b.WriteString(" id=")
	b.WriteString(redacted(t.IDToken))
	if t.Scope != "" {
		b.WriteString(" scope=")
		b.WriteString(t.Scope)
	}
	b.WriteString(" expiry=")
	if t.Expiry.IsZero() {
		b.WriteString("none")
	} else {
		b.WriteString(t.Expiry.UTC().Format(time.RFC3339))
	}
	if len(t.Extra) > 0 {
		keys := make([]string, 0, len(t.Extra))
		for k := range t.Extra {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b.WriteString(" extra=[")
		b.WriteString(strings.Join(keys, ","))
		b.WriteString("]")
	}
	b.WriteString("}")
	return b.String()
}

// GoString is String: %#v never shows a secret either.
func (t Token) GoString() string { return t.String() }

// Format makes every fmt verb (%v, %+v, %#v, %s, %q) print String.
func (t Token) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", t.String())
		return
	}
	_, _ = f.Write([]byte(t.String()))
}

// LogValue renders the token for log/slog without its secrets.
func (t Token) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("type", t.TokenType),
		slog.String("access", redacted(t.AccessToken)),
		slog.String("refresh", redacted(t.RefreshToken)),
	}
	if !t.Expiry.IsZero() {
		attrs = append(attrs, slog.Time("expiry", t.Expiry))
	}
	return slog.GroupValue(attrs...)
}

func redacted(s string) string {
	if s == "" {
		return "unset"
	}
	return "redacted"
}
