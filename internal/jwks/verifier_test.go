package jwks

import (
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"slices"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/authkit-go/authkit/auth"
)

func TestDefaultAlgorithmsIsACopy(t *testing.T) {
	a := defaultAlgorithms()
	a[0] = "none"
	if b := defaultAlgorithms(); b[0] != "RS256" || slices.Contains(b, "none") {
		t.Fatalf("DefaultAlgorithms shares its slice: %v", b)
	}
}

func TestNewVerifierConfigErrors(t *testing.T) {
	ks, err := NewKeySet(Config{URL: "https://example.com/jwks"})
	if err != nil {
		t.Fatal(err)
	}
	small := &rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), 1023), E: 65537}
	for _, tc := range []struct {
		name string
		cfg  VerifierConfig
	}{
		{"no key source", VerifierConfig{}},
		{"none", VerifierConfig{KeySet: ks, Algorithms: []string{"RS256", "none"}}},
		{"NONE", VerifierConfig{KeySet: ks, Algorithms: []string{"NONE"}}},
		{"unknown algorithm", VerifierConfig{KeySet: ks, Algorithms: []string{"RS1"}}},
		{"short HMAC key", VerifierConfig{Keys: map[string]any{"k": auth.NewSecret("short")}}},
		{"HMAC key as bytes (would print)", VerifierConfig{Keys: map[string]any{"k": []byte("0123456789abcdef0123456789abcdef")}}},
		{"private key", VerifierConfig{Keys: map[string]any{"k": key("A").key}}},
		{"string key", VerifierConfig{Keys: map[string]any{"k": "secret"}}},
		{"nil RSA key", VerifierConfig{Keys: map[string]any{"k": (*rsa.PublicKey)(nil)}}},
		{"RSA key under 2048 bits", VerifierConfig{Keys: map[string]any{"k": small}}},
		{"short Ed25519 key", VerifierConfig{Keys: map[string]any{"k": ed25519.PublicKey{1, 2, 3}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := NewVerifier(tc.cfg)
			if !errors.Is(err, auth.ErrInvalidConfig) || v != nil {
				t.Fatalf("NewVerifier = %v, %v; want a configuration error", v, err)
			}
		})
	}
}

// rewriteAlg signs a token whose header says alg with s's own method, to
// present a key with an algorithm it does not belong to.
func rewriteAlg(t *testing.T, s signer, alg string) string {
	t.Helper()
	tok := jwt.NewWithClaims(s.method, jwt.MapClaims{"sub": "alice"})
	tok.Header["alg"], tok.Header["kid"] = alg, s.kid
	ss, err := tok.SigningString()
	if err != nil {
		t.Fatal(err)
	}
	sig, err := s.method.Sign(ss, s.key)
	if err != nil {
		t.Fatal(err)
	}
	return ss + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// The algorithm table: only allow-listed algorithms, each with its own key
// type (RFC 8725 §3.1, §3.2).
func TestAlgorithms(t *testing.T) {
	rsaPub := key("rsa").public().(*rsa.PublicKey)
	der, err := x509.MarshalPKIXPublicKey(rsaPub)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	keys := map[string]any{
		"rsa":  rsaPub,
		"A":    key("A").public(),
		"p384": key("p384").public(),
		"ed":   key("ed").public(),
		"hmac": key("hmac").public(),
	}
	def, err := NewVerifier(VerifierConfig{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	withHS, err := NewVerifier(VerifierConfig{Keys: keys, Algorithms: []string{"RS256", "ES256", "HS256", "HS512"}})
	if err != nil {
		t.Fatal(err)
	}
	rsOnly, err := NewVerifier(VerifierConfig{Keys: keys, Algorithms: []string{"RS256"}})
	if err != nil {
		t.Fatal(err)
	}
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "alice"}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	expired := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"exp": time.Now().Add(-time.Hour).Unix()})
	expired.Header["kid"] = "A"
	expiredRaw, err := expired.SignedString(key("A").key)
	if err != nil {
		t.Fatal(err)
	}
	numericKid := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{})
	numericKid.Header["kid"] = 7
	numericKidRaw, err := numericKid.SignedString(key("A").key)
	if err != nil {
		t.Fatal(err)
	}
	hmacDER := signer{"rsa", jwt.SigningMethodHS256, der}
	hmacPEM := signer{"rsa", jwt.SigningMethodHS256, pemKey}

	for _, tc := range []struct {
		name string
		v    *Verifier
		raw  string
		opts []jwt.ParserOption
		want error // nil: verifies
	}{
		{"RS256", def, key("rsa").sign(t), nil, nil},
		{"PS256", def, key("pss").sign(t), nil, nil},
		{"ES256 with P-256", def, key("A").sign(t), nil, nil},
		{"ES384 with P-384", def, key("p384").sign(t), nil, nil},
		{"EdDSA", def, key("ed").sign(t), nil, nil},
		{"HS256 allowed, HMAC key", withHS, key("hmac").sign(t), nil, nil},
		{"HS512 with a 32-byte key", withHS, signer{"hmac", jwt.SigningMethodHS512, key("hmac").key}.sign(t), nil, ErrUnknownKey},
		{"no kid: every key of the type", def, key("A").withKid("").sign(t), nil, nil},
		{"none", def, none, nil, jwt.ErrTokenSignatureInvalid},
		{"none, HMAC allowed", withHS, none, nil, jwt.ErrTokenSignatureInvalid},
		{"HS256 not allowed", def, key("hmac").sign(t), nil, jwt.ErrTokenSignatureInvalid},
		{"HS256 with the RSA key's DER as secret", def, hmacDER.sign(t), nil, jwt.ErrTokenSignatureInvalid},
		{"HS256 allowed, RSA key's DER as secret", withHS, hmacDER.sign(t), nil, ErrUnknownKey},
		{"HS256 allowed, RSA key's PEM as secret", withHS, hmacPEM.sign(t), nil, ErrUnknownKey},
		{"HS256 allowed, PEM secret, no kid", withHS, signer{"", jwt.SigningMethodHS256, pemKey}.sign(t), nil, jwt.ErrTokenSignatureInvalid},
		{"opts cannot widen the allow-list", def, key("hmac").sign(t), []jwt.ParserOption{jwt.WithValidMethods([]string{"HS256"})}, jwt.ErrTokenSignatureInvalid},
		{"ES256 header with a P-384 key", def, rewriteAlg(t, key("p384"), "ES256"), nil, ErrUnknownKey},
		{"RS256 header with an EC key", def, rewriteAlg(t, key("rsa").withKid("A"), "RS256"), nil, ErrUnknownKey},
		{"EdDSA header with an RSA key", def, rewriteAlg(t, key("rsa"), "EdDSA"), nil, ErrUnknownKey},
		{"ES256 by another key, same kid", def, key("B").withKid("A").sign(t), nil, jwt.ErrTokenSignatureInvalid},
		{"alg outside the allow-list", rsOnly, key("A").sign(t), nil, jwt.ErrTokenSignatureInvalid},
		{"unknown kid, static keys only", def, key("A").withKid("nope").sign(t), nil, ErrUnknownKey},
		{"kid not a string", def, numericKidRaw, nil, ErrUnknownKey},
		{"not a JWT", def, "not.a.jwt", nil, jwt.ErrTokenMalformed},
		{"expired", def, expiredRaw, nil, jwt.ErrTokenExpired},
		{"expired, by the given clock", def, expiredRaw, []jwt.ParserOption{jwt.WithTimeFunc(func() time.Time { return time.Unix(0, 0) })}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := parse(t.Context(), tc.v, tc.raw, tc.opts...)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Parse = %v, want %v", err, tc.want)
			}
		})
	}
}

// Parse decodes the verified claims into the caller's type and returns no
// token on error.
func TestParseClaims(t *testing.T) {
	v, err := NewVerifier(VerifierConfig{Keys: map[string]any{"A": key("A").public()}})
	if err != nil {
		t.Fatal(err)
	}
	var claims jwt.RegisteredClaims
	tok, err := v.Parse(t.Context(), key("A").sign(t), &claims)
	if err != nil || !tok.Valid || claims.Subject != "alice" {
		t.Fatalf("Parse = %v, %v; claims %+v", tok, err, claims)
	}
	tok, err = v.Parse(t.Context(), key("B").withKid("A").sign(t), &jwt.RegisteredClaims{})
	if err == nil || tok != nil {
		t.Fatalf("Parse of a bad signature = %v, %v; want nil, error", tok, err)
	}
}

// A kid with a static key never reaches the KeySet; other kids do.
func TestStaticKeysFirst(t *testing.T) {
	f := newFakeJWKS(t, jwkSet(t, key("B")))
	ks, err := NewKeySet(Config{URL: f.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close() })
	v, err := NewVerifier(VerifierConfig{KeySet: ks, Keys: map[string]any{"A": key("A").public()}})
	if err != nil {
		t.Fatal(err)
	}
	if err := parse(t.Context(), v, key("A").sign(t)); err != nil {
		t.Fatalf("static kid: %v", err)
	}
	if n := f.n.Load(); n != 0 {
		t.Fatalf("a static kid sent %d requests, want 0", n)
	}
	if err := parse(t.Context(), v, key("B").sign(t)); err != nil {
		t.Fatalf("remote kid: %v", err)
	}
	// A static kid whose key does not verify is refused, not looked up.
	if err := parse(t.Context(), v, key("B").withKid("A").sign(t)); !errors.Is(err, jwt.ErrTokenSignatureInvalid) {
		t.Fatalf("wrong key under a static kid: %v", err)
	}
	if n := f.n.Load(); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}
}
