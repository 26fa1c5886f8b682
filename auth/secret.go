package auth

import (
	"crypto/subtle"
	"fmt"
	"log/slog"
)

// Secret is a credential — a password, a client secret, an API key, an
// access, refresh or ID token, a device code — that never prints itself.
// Every fmt verb prints "[redacted]" (an empty Secret prints nothing), log/slog
// logs "[redacted]" in text and JSON, encoding/json and text encoders write
// "[redacted]", nested at any depth in structs, slices and maps. The value is
// held behind a pointer, so that even printing by reflection (an unexported
// field of a struct) shows an address, not the value. Reveal is the one way
// out, for the places that must send it.
//
// The zero value is the empty secret. Secrets are immutable and safe to copy
// and to share between goroutines; == does not compile on them (it would
// compare pointers): use Equal. Decoding (UnmarshalJSON, UnmarshalText)
// reads the value as given, so that a configuration file may hold one;
// encoding never writes it: a token store keeps tokens in a format of its
// own.
type Secret struct {
	_ [0]func() // not comparable: == would compare pointers; use Equal
	p *string
}

// NewSecret returns a Secret holding s; an empty s gives the empty Secret.
func NewSecret(s string) Secret {
	if s == "" {
		return Secret{}
	}
	return Secret{p: &s}
}

// Reveal returns the value, for the places that must send it. Never log it.
func (s Secret) Reveal() string {
	if s.p == nil {
		return ""
	}
	return *s.p
}

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s.p == nil }

// Equal reports whether s and o hold the same value, in time that depends
// only on their lengths (https://pkg.go.dev/crypto/subtle#ConstantTimeCompare).
func (s Secret) Equal(o Secret) bool {
	return subtle.ConstantTimeCompare([]byte(s.Reveal()), []byte(o.Reveal())) == 1
}

const redactedText = "[redacted]"

// String returns "[redacted]", or "" for the empty secret.
func (s Secret) String() string {
	if s.p == nil {
		return ""
	}
	return redactedText
}

// Format prints String under every verb (%q quotes it).
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", s.String())
		return
	}
	_, _ = f.Write([]byte(s.String()))
}

// LogValue logs String.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText writes String, never the value.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads the value as given.
func (s *Secret) UnmarshalText(b []byte) error {
	*s = NewSecret(string(b))
	return nil
}
