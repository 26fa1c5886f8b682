package jws

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"math/big"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// TestThumbprintKnownAnswer: RFC 7638 §3.1's example key has the
// thumbprint the RFC gives.
func TestThumbprintKnownAnswer(t *testing.T) {
	n := "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
	nb, err := base64.RawURLEncoding.DecodeString(n)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Thumbprint(&rsa.PublicKey{N: new(big.Int).SetBytes(nb), E: 65537})
	if err != nil || got != "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs" {
		t.Errorf("thumbprint %q, %v", got, err)
	}
}

// TestES256SignatureIsRawAndVerifies: an ECDSA signature is JWS's 64-byte
// r || s (not the signer's ASN.1), and verifies with golang-jwt; the
// header carries alg, kid and typ.
func TestES256SignatureIsRawAndVerifies(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s, err := NewSigner(k, "", "", "dpop+jwt")
	if err != nil {
		t.Fatal(err)
	}
	for range 20 { // r or s with leading zero bytes must keep their width
		c, err := s.Sign(map[string]any{"sub": "x"})
		if err != nil {
			t.Fatal(err)
		}
		sig, _ := base64.RawURLEncoding.DecodeString(c[strings.LastIndexByte(c, '.')+1:])
		if len(sig) != 64 {
			t.Fatalf("signature of %d bytes, want 64", len(sig))
		}
		tok, err := jwt.Parse(c, func(*jwt.Token) (any, error) { return &k.PublicKey, nil }, jwt.WithValidMethods([]string{"ES256"}))
		if err != nil {
			t.Fatal(err)
		}
		if tok.Header["kid"] != s.KeyID() || tok.Header["typ"] != "dpop+jwt" || tok.Header["alg"] != "ES256" {
			t.Errorf("header %v", tok.Header)
		}
	}
}
