package dpop

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/authkit-go/authkit/internal/jws"
)

// keyFromHeader is the public key a proof carries, as a server reads it.
func keyFromHeader(t *testing.T, tok *jwt.Token) *ecdsa.PublicKey {
	t.Helper()
	raw, _ := json.Marshal(tok.Header["jwk"])
	var j struct{ Kty, Crv, X, Y, D string }
	if err := json.Unmarshal(raw, &j); err != nil || j.Kty != "EC" || j.Crv != "P-256" {
		t.Fatalf("header jwk %s", raw)
	}
	if j.D != "" {
		t.Fatal("the proof's jwk holds the private key")
	}
	x, _ := base64.RawURLEncoding.DecodeString(j.X)
	y, _ := base64.RawURLEncoding.DecodeString(j.Y)
	k, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
	if err != nil {
		t.Fatalf("header jwk: %v", err)
	}
	return k
}

// TestProof: a proof verifies with the key in its own header; its header
// is typ dpop+jwt and alg ES256 without kid; its claims are the method,
// the URI without query or fragment, iat, a jti new for every proof, the
// access token's hash and the nonce; the key's thumbprint is its jkt.
func TestProof(t *testing.T) {
	p, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	var jtis []string
	for _, tt := range []struct {
		token, nonce string
	}{{"", ""}, {"access-token-value", "n-1"}} {
		proof, err := p.Proof("POST", "https://idp.example/token?x=1#frag", tt.token, tt.nonce, now)
		if err != nil {
			t.Fatal(err)
		}
		var key *ecdsa.PublicKey
		tok, err := jwt.Parse(proof, func(tok *jwt.Token) (any, error) {
			key = keyFromHeader(t, tok)
			return key, nil
		}, jwt.WithValidMethods([]string{"ES256"}), jwt.WithTimeFunc(func() time.Time { return now }))
		if err != nil {
			t.Fatalf("the proof does not verify with its own jwk: %v", err)
		}
		if tok.Header["typ"] != "dpop+jwt" || tok.Header["kid"] != nil {
			t.Errorf("header %v", tok.Header)
		}
		if jkt, _ := jws.Thumbprint(key); jkt != p.Thumbprint() {
			t.Errorf("jkt %s, the header's key's thumbprint %s", p.Thumbprint(), jkt)
		}
		c := tok.Claims.(jwt.MapClaims)
		if c["htm"] != "POST" || c["htu"] != "https://idp.example/token" || int64(c["iat"].(float64)) != now.Unix() {
			t.Errorf("claims %v", c)
		}
		sum := sha256.Sum256([]byte(tt.token))
		switch {
		case tt.token == "" && c["ath"] != nil:
			t.Error("a token request's proof carries ath")
		case tt.token != "" && c["ath"] != base64.RawURLEncoding.EncodeToString(sum[:]):
			t.Errorf("ath %v", c["ath"])
		}
		if (tt.nonce == "") != (c["nonce"] == nil) || (tt.nonce != "" && c["nonce"] != tt.nonce) {
			t.Errorf("nonce %v, want %q", c["nonce"], tt.nonce)
		}
		jtis = append(jtis, c["jti"].(string))
	}
	if jtis[0] == jtis[1] || len(jtis[0]) < 16 {
		t.Errorf("jtis %q", jtis)
	}
	for in, want := range map[string]string{
		"https://a.example/p?":            "https://a.example/p",
		"https://user:pw@a.example/p?q#f": "https://a.example/p",
		"https://a.example/p%20q?x=1":     "https://a.example/p%20q",
	} {
		if got, err := TargetURI(in); err != nil || got != want {
			t.Errorf("TargetURI(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := p.Proof("GET", "/relative", "", "", now); err == nil || !strings.Contains(err.Error(), "absolute") {
		t.Errorf("a relative URI: %v", err)
	}
}

// BenchmarkProof: a proof with ES256, as sent with every request of a
// DPoP-bound token (issue 24 asks for at most 50 µs on these machines).
func BenchmarkProof(b *testing.B) {
	p, err := New(nil)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Proof("GET", "https://hub.example.com/api/me", "access-token-value", "", now); err != nil {
			b.Fatal(err)
		}
	}
}
