package jwtclaims

import (
	"encoding/base64"
	"errors"
	"testing"
	"time"
)

func jwt(claims string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256"}`)) + "." + enc([]byte(claims)) + "." + enc([]byte("sig"))
}

func TestDecodeAndExpiry(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		decErr  error
		exp     time.Time
		expErr  error
		subject string
	}{
		{"integer exp", jwt(`{"sub":"ada","exp":1893456000,"iat":1893452400}`), nil, time.Unix(1893456000, 0).UTC(), nil, "ada"},
		{"fractional exp", jwt(`{"exp":1893456000.25}`), nil, time.Unix(1893456000, 250_000_000).UTC(), nil, ""},
		{"no exp", jwt(`{"sub":"ada"}`), nil, time.Time{}, nil, "ada"},
		{"string exp", jwt(`{"exp":"tomorrow"}`), nil, time.Time{}, errBadExp, ""},
		{"absurd exp", jwt(`{"exp":1e300}`), nil, time.Time{}, errBadExp, ""},
		{"opaque token", "2YotnFZFEjr1zCsicMWpAA", errNotJWT, time.Time{}, nil, ""},
		{"two parts", "a.b", errNotJWT, time.Time{}, nil, ""},
		{"payload not base64", "e30.!!!.c", errNotJWT, time.Time{}, nil, ""},
		{"header not base64", "%%%.e30.c", errNotJWT, time.Time{}, nil, ""},
		{"header not an object", "WzFd.e30.c", errNotJWT, time.Time{}, nil, ""},
		{"payload not an object", jwt(`[1,2]`), errNotJWT, time.Time{}, nil, ""},
		{"padded payload", "e30." + base64.URLEncoding.EncodeToString([]byte(`{"exp":5}`)) + ".s", nil, time.Unix(5, 0).UTC(), nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Decode(tt.raw)
			if !errors.Is(err, tt.decErr) {
				t.Fatalf("Decode error = %v, want %v", err, tt.decErr)
			}
			if err != nil {
				if _, _, ok := Times(tt.raw); ok {
					t.Error("Times ok for a non-JWT")
				}
				return
			}
			exp, err := c.Expiry()
			if !errors.Is(err, tt.expErr) || !exp.Equal(tt.exp) {
				t.Errorf("Expiry = %v, %v; want %v, %v", exp, err, tt.exp, tt.expErr)
			}
			if got := c.String("sub"); got != tt.subject {
				t.Errorf("String(sub) = %q, want %q", got, tt.subject)
			}
		})
	}
}

func TestTimes(t *testing.T) {
	iat, exp, ok := Times(jwt(`{"exp":1893456000,"iat":1893452400.5}`))
	if !ok || !exp.Equal(time.Unix(1893456000, 0)) || !iat.Equal(time.Unix(1893452400, 500_000_000)) {
		t.Errorf("Times = %v, %v, %v", iat, exp, ok)
	}
	iat, exp, ok = Times(jwt(`{"iat":"yesterday"}`))
	if !ok || !iat.IsZero() || !exp.IsZero() {
		t.Errorf("Times with a malformed iat and no exp = %v, %v, %v", iat, exp, ok)
	}
}
