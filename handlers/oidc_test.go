package handlers

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/authkit-go/authkit/authtest"
)

func TestIDTokenVerification(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwks := map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256",
		"n": base64.RawURLEncoding.EncodeToString(key.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(key.E)).Bytes()),
	}}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(jwks)
	}))
	defer srv.Close()
	clk := authtest.NewClock(time.Time{})
	now := clk.Now()
	const iss = "https://idp.example"
	sign := func(k *rsa.PrivateKey, claims jwt.MapClaims) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
		tok.Header["kid"] = "k1"
		s, err := tok.SignedString(k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	good := func() jwt.MapClaims {
		return jwt.MapClaims{"iss": iss, "aud": "cli", "sub": "u1", "preferred_username": "ada",
			"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()}
	}
	with := func(k string, v any) jwt.MapClaims {
		c := good()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, good())
	hs.Header["kid"] = "k1"
	hsToken, _ := hs.SignedString([]byte("guessable"))
	tests := []struct {
		name    string
		raw     string
		wantErr error
	}{
		{"valid", sign(key, good()), nil},
		{"bad signature", sign(other, good()), jwt.ErrTokenSignatureInvalid},
		{"wrong aud", sign(key, with("aud", "someone-else")), jwt.ErrTokenInvalidAudience},
		{"expired", sign(key, with("exp", now.Add(-10*time.Minute).Unix())), jwt.ErrTokenExpired},
		{"no exp", sign(key, with("exp", nil)), jwt.ErrTokenRequiredClaimMissing},
		{"wrong iss", sign(key, with("iss", "https://evil.example")), jwt.ErrTokenInvalidIssuer},
		{"HS256 with a guessable key", hsToken, jwt.ErrTokenSignatureInvalid},
		{"garbage", "not.a.jwt", jwt.ErrTokenMalformed},
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v := &idVerifier{issuer: iss, clientID: "cli", claim: DefaultUsernameClaim, clock: clk}
	defer v.close()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, name, err := v.verify(ctx, srv.URL, tt.raw)
			if tt.wantErr == nil {
				if err != nil || name != "ada" {
					t.Fatalf("name %q, err %v", name, err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidIDToken) {
				t.Fatalf("err = %v, want ErrInvalidIDToken", err)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}
