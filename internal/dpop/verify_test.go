package dpop

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/authkit-go/authkit/internal/jws"
)

// TestVerify: a proof is accepted for the request, token, key and nonce
// it names, once; every field that names something else, a proof too old
// or from the future, a replayed jti, a private key in the header, a
// symmetric alg or another typ is refused.
func TestVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	p, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := New(nil)
	const uri = "https://api.example/v1/me"
	req := Request{Method: "GET", URI: uri, AccessToken: "tok", JKT: p.Thumbprint(), Nonce: "n1"}
	proof := func(p *Prover, method, uri, token, nonce string, at time.Time) string {
		s, err := p.Proof(method, uri, token, nonce, at)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	good := func() string { return proof(p, "GET", uri, "tok", "n1", now) }

	v := NewVerifier(clock, time.Minute)
	g := good()
	if got, err := v.Verify(g, req); err != nil || got.JKT != p.Thumbprint() {
		t.Fatalf("a good proof: %v %v", got, err)
	}
	if _, err := v.Verify(g, req); !errors.Is(err, ErrInvalidProof) || !strings.Contains(err.Error(), "replayed") {
		t.Errorf("the same proof again: %v", err)
	}
	// Equivalent URIs: case of scheme and host, default port, query.
	if _, err := v.Verify(proof(p, "GET", "HTTPS://API.example:443/v1/me?a=b", "tok", "n1", now), req); err != nil {
		t.Errorf("an equivalent htu: %v", err)
	}

	privateJWK := func() string {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		s, _ := jws.NewSignerWithJWK(k, "", "dpop+jwt")
		parts := strings.Split(mustSign(t, s, now), ".")
		var h map[string]any
		raw, _ := base64.RawURLEncoding.DecodeString(parts[0])
		_ = json.Unmarshal(raw, &h)
		d, _ := k.Bytes()
		h["jwk"].(map[string]any)["d"] = base64.RawURLEncoding.EncodeToString(d)
		hb, _ := json.Marshal(h)
		return base64.RawURLEncoding.EncodeToString(hb) + "." + parts[1] + "." + parts[2]
	}
	wrongTyp := func() string {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		s, _ := jws.NewSignerWithJWK(k, "", "JWT")
		return mustSign(t, s, now)
	}
	for _, tt := range []struct {
		name, proof, want string
		nonce             bool
	}{
		{"another method", proof(p, "POST", uri, "tok", "n1", now), "htm", false},
		{"another URI", proof(p, "GET", "https://api.example/v1/other", "tok", "n1", now), "htu", false},
		{"another host", proof(p, "GET", "https://evil.example/v1/me", "tok", "n1", now), "htu", false},
		{"another token", proof(p, "GET", uri, "tok2", "n1", now), "ath", false},
		{"no token hash", proof(p, "GET", uri, "", "n1", now), "ath", false},
		{"another key", proof(other, "GET", uri, "tok", "n1", now), "bound", false},
		{"too old", proof(p, "GET", uri, "tok", "n1", now.Add(-61*time.Second)), "iat", false},
		{"from the future", proof(p, "GET", uri, "tok", "n1", now.Add(6*time.Second)), "iat", false},
		{"no nonce", proof(p, "GET", uri, "tok", "", now), "", true},
		{"an old nonce", proof(p, "GET", uri, "tok", "n0", now), "", true},
		{"a private key in the header", privateJWK(), "private", false},
		{"typ JWT", wrongTyp(), "typ", false},
		{"not a JWS", "a.b.c", "", false},
		{"alg none", "eyJhbGciOiJub25lIiwidHlwIjoiZHBvcCtqd3QifQ.e30.", "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewVerifier(clock, time.Minute).Verify(tt.proof, req)
			switch {
			case tt.nonce && !errors.Is(err, ErrUseNonce):
				t.Errorf("%v, want ErrUseNonce", err)
			case !tt.nonce && !errors.Is(err, ErrInvalidProof):
				t.Errorf("%v, want ErrInvalidProof", err)
			case !tt.nonce && !strings.Contains(err.Error(), tt.want):
				t.Errorf("%v, want a reason naming %q", err, tt.want)
			}
		})
	}
}

// TestVerifyForgetsSpentJTIs: a jti is remembered as long as its proof
// could be accepted, and no longer: the memory of a busy server stays
// bounded by the proofs of one window.
func TestVerifyForgetsSpentJTIs(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	v := NewVerifier(func() time.Time { return now }, time.Minute)
	p, _ := New(nil)
	for i := range 3000 {
		now = now.Add(time.Second)
		s, _ := p.Proof("GET", "https://a.example/", "", "", now)
		if _, err := v.Verify(s, Request{Method: "GET", URI: "https://a.example/"}); err != nil {
			t.Fatalf("proof %d: %v", i, err)
		}
	}
	v.mu.Lock()
	n := len(v.seen)
	v.mu.Unlock()
	if n > 1024+int((Window+Skew)/time.Second)+1 {
		t.Errorf("%d jtis remembered after 3000 proofs, one a second", n)
	}
}

func mustSign(t *testing.T, s *jws.Signer, now time.Time) string {
	t.Helper()
	out, err := s.Sign(claims{Jti: rand.Text(), Htm: "GET", Htu: "https://api.example/v1/me", Iat: now.Unix(), Ath: AccessTokenHash("tok"), Nonce: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// BenchmarkVerify: what a resource server spends on one proof (ES256).
func BenchmarkVerify(b *testing.B) {
	p, _ := New(nil)
	v := NewVerifier(nil, 0)
	req := Request{Method: "GET", URI: "https://hub.example.com/api/me", AccessToken: "access-token-value", JKT: p.Thumbprint()}
	b.ReportAllocs()
	for b.Loop() {
		s, _ := p.Proof(req.Method, req.URI, req.AccessToken, "", time.Now())
		if _, err := v.Verify(s, req); err != nil {
			b.Fatal(err)
		}
	}
}
