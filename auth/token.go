package auth

import (
	"fmt"
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
	// DPoPKey is the key the token is bound to, when it was obtained with
	// a DPoP proof (https://www.rfc-editor.org/rfc/rfc9449): the access
	// token is sent with a proof made with it when TokenType is "DPoP",
	// and the refresh token is spent with one. Stores keep it with the
	// token. Nil for a token bound to no key.
	DPoPKey *DPoPKey `json:"-"`

	meta *tokenMeta // custody bookkeeping, kept by the stores (custody.go); nil for none
}

// tokenMeta is what the engine and the stores keep with a token besides
// what the provider sent. It holds no secret, and is never changed once
// a token carries it: a change gives the token a new one.
type tokenMeta struct {
	gen   uint64       // issue order within the login: higher is newer
	spend *spendRecord // set while a process spends RefreshToken
	ident *Identity    // verified when the token was obtained; nil when unknown
	// obtained is when the engine got the token (wall clock).
	obtained time.Time
	// reseeded is when a process saved the token back into a store that
	// had lost it (or held an older one): its refresh token waits one
	// token lifetime before it is spent (see custody.reseedWait).
	reseeded time.Time
}

// gen is t's generation; 0 when unknown.
func (t *Token) gen() uint64 {
	if t == nil || t.meta == nil {
		return 0
	}
	return t.meta.gen
}

// Generation is t's issue order within its login, as the engine counts
// it: each token the engine saves has a higher one than the token it
// replaces. Zero when unknown. Stores that compare tokens (auth/redisstore)
// read it; the engine decides by it which of two tokens is newer.
func (t *Token) Generation() uint64 { return t.gen() }

// spendRec is t's spend record, or nil.
func (t *Token) spendRec() *spendRecord {
	if t == nil || t.meta == nil {
		return nil
	}
	return t.meta.spend
}

// ident is t's verified identity, or nil.
func (t *Token) ident() *Identity {
	if t == nil || t.meta == nil {
		return nil
	}
	return t.meta.ident
}

// setMeta changes t's bookkeeping through f. t must not be published yet
// (a fresh token or clone): its old tokenMeta, which clones share, is
// copied, never written.
func (t *Token) setMeta(f func(m *tokenMeta)) {
	var m tokenMeta
	if t.meta != nil {
		m = *t.meta
	}
	f(&m)
	if m == (tokenMeta{}) {
		t.meta = nil
		return
	}
	t.meta = &m
}

// tokenView is what a Token prints: its exported fields, the secrets
// among them redacted by their own type.
type tokenView struct {
	AccessToken   Secret
	TokenType     string
	RefreshToken  Secret
	IDToken       Secret
	Scope         string
	Expiry        time.Time
	RefreshExpiry time.Time
	Extra         map[string]Secret
}

// Format prints t's exported fields under every verb, never a secret and
// never the bookkeeping the engine keeps with it.
func (t Token) Format(f fmt.State, verb rune) {
	v := tokenView{AccessToken: t.AccessToken, TokenType: t.TokenType, RefreshToken: t.RefreshToken, IDToken: t.IDToken,
		Scope: t.Scope, Expiry: t.Expiry, RefreshExpiry: t.RefreshExpiry, Extra: t.Extra}
	if verb == 'v' && f.Flag('#') {
		fmt.Fprintf(f, "auth.Token%+v", v)
		return
	}
	fmt.Fprintf(f, fmt.FormatString(f, verb), v)
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
