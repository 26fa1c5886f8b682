package handlers

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/authtest"
	"github.com/authkit-go/authkit/internal/jws"
)

// testKeys are one key of each type, made once (RSA keys are slow to make).
var testKeys = sync.OnceValue(func() map[string]crypto.Signer {
	r, _ := rsa.GenerateKey(rand.Reader, 2048)
	e, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	return map[string]crypto.Signer{"RS256": r, "PS256": r, "ES256": e, "EdDSA": ed}
})

// TestPrivateKeyJWTWireFormat: the token request carries client_id, the
// assertion type and a JWT signed with the key — alg and kid in its
// header; iss and sub the client, aud the token endpoint, a jti, iat and
// an exp one minute later in its claims — and neither a secret nor an
// Authorization header. A second request carries a new assertion.
func TestPrivateKeyJWTWireFormat(t *testing.T) {
	for _, alg := range []string{"RS256", "PS256", "ES256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			key := testKeys()[alg]
			clk := authtest.NewClock(time.Time{})
			p := newProvider(t, clk, func(c *authtest.ProviderConfig) {
				c.Clients = append(c.Clients, authtest.Client{ID: "robot", PublicKeys: []crypto.PublicKey{key.Public()}})
				c.AccessTokenLifetime = time.Minute
			})
			rec := &recorder{clk: clk}
			src, err := NewPrivateKeyJWT(PrivateKeyJWTConfig{Key: key, Algorithm: alg})
			if err != nil {
				t.Fatal(err)
			}
			h, err := NewClientCredentials(ClientCredentialsConfig{OAuthConfig: OAuthConfig{
				Endpoints: Endpoints{TokenURL: p.TokenURL()}, ClientID: "robot", ClientAssertion: src,
				HTTPClient: rec.client(), Clock: clk,
			}})
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			ctx := context.Background()
			if err := h.Authenticate(ctx); err != nil {
				t.Fatal(err)
			}
			clk.Advance(time.Minute) // past expiry: a new token request
			if _, err := h.Token(ctx); err != nil {
				t.Fatal(err)
			}
			reqs := rec.to(authtest.EndpointToken)
			if len(reqs) != 2 {
				t.Fatalf("%d token requests, want 2", len(reqs))
			}
			thumb, _ := jws.Thumbprint(key.Public())
			var jtis []string
			for _, r := range reqs {
				f := r.form
				if f.Get("client_id") != "robot" || f.Get("client_assertion_type") != ClientAssertionType || f.Has("client_secret") || r.auth != "" {
					t.Fatalf("form %v, Authorization %q", f, r.auth)
				}
				tok, err := jwt.NewParser(jwt.WithValidMethods([]string{alg}), jwt.WithTimeFunc(func() time.Time { return r.at })).
					Parse(f.Get("client_assertion"), func(*jwt.Token) (any, error) { return key.Public(), nil })
				if err != nil {
					t.Fatalf("the assertion does not verify with the public key: %v", err)
				}
				if tok.Header["kid"] != thumb || tok.Header["alg"] != alg {
					t.Errorf("header %v, want alg %s and kid %s (the RFC 7638 thumbprint)", tok.Header, alg, thumb)
				}
				c := tok.Claims.(jwt.MapClaims)
				iat, exp := int64(c["iat"].(float64)), int64(c["exp"].(float64))
				if c["iss"] != "robot" || c["sub"] != "robot" || c["aud"] != p.TokenURL() || exp-iat != 60 || iat != r.at.Unix() {
					t.Errorf("claims %v", c)
				}
				jtis = append(jtis, c["jti"].(string))
			}
			if jtis[0] == "" || jtis[0] == jtis[1] {
				t.Errorf("jtis %q: want a new one per request", jtis)
			}
			if got := p.LastRequest(authtest.EndpointToken).AuthMethod; got != authtest.AuthMethodPrivateKeyJWT {
				t.Errorf("the provider saw %s", got)
			}
		})
	}
}

// TestPrivateKeyJWTReplayRefused: the provider refuses an assertion it
// has seen (its jti), so a copied assertion is useless; the handler never
// sends one twice (TestPrivateKeyJWTWireFormat).
func TestPrivateKeyJWTReplayRefused(t *testing.T) {
	key := testKeys()["ES256"]
	p := newProvider(t, nil, func(c *authtest.ProviderConfig) {
		c.Clients = append(c.Clients, authtest.Client{ID: "robot", PublicKeys: []crypto.PublicKey{key.Public()}})
	})
	src, _ := NewPrivateKeyJWT(PrivateKeyJWTConfig{Key: key})
	h, err := NewClientCredentials(ClientCredentialsConfig{OAuthConfig: OAuthConfig{
		Endpoints: Endpoints{TokenURL: p.TokenURL()}, ClientID: "robot", ClientAssertion: src}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.Authenticate(context.Background()); err != nil {
		t.Fatal(err)
	}
	copied := p.LastRequest(authtest.EndpointToken).Form
	resp, err := http.PostForm(p.TokenURL(), copied)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || p.ReplayedAssertions() != 1 {
		t.Errorf("a replayed assertion: HTTP %d, %d replays refused; want 401 and 1", resp.StatusCode, p.ReplayedAssertions())
	}
}

// TestPrivateKeyJWTWrongKeyIsTerminal: an assertion signed with a key the
// provider does not know is invalid_client: a typed, terminal error.
func TestPrivateKeyJWTWrongKeyIsTerminal(t *testing.T) {
	p := newProvider(t, nil, func(c *authtest.ProviderConfig) {
		c.Clients = append(c.Clients, authtest.Client{ID: "robot", PublicKeys: []crypto.PublicKey{testKeys()["ES256"].Public()}})
	})
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	src, _ := NewPrivateKeyJWT(PrivateKeyJWTConfig{Key: other})
	h, _ := NewClientCredentials(ClientCredentialsConfig{OAuthConfig: OAuthConfig{
		Endpoints: Endpoints{TokenURL: p.TokenURL()}, ClientID: "robot", ClientAssertion: src}})
	defer h.Close()
	err := h.Authenticate(context.Background())
	var oe *auth.OAuthError
	if !errors.As(err, &oe) || oe.Code != "invalid_client" || auth.IsTransient(err) {
		t.Fatalf("err = %v, want a terminal invalid_client", err)
	}
}

// TestPrivateKeyJWTNeverPrintsItsKey: however it is printed or logged —
// alone, or inside an OAuthConfig — the source shows its alg and kid,
// never key material.
func TestPrivateKeyJWTNeverPrintsItsKey(t *testing.T) {
	key := testKeys()["RS256"].(*rsa.PrivateKey)
	src, _ := NewPrivateKeyJWT(PrivateKeyJWTConfig{Key: key})
	cfg := OAuthConfig{ClientID: "robot", ClientAssertion: src}
	var logs strings.Builder
	slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "src", src, "cfg", cfg)
	out := fmt.Sprintf("%v %+v %#v %s %v %+v %#v", src, src, src, src, cfg, cfg, cfg) + logs.String()
	for _, secret := range []string{key.D.String(), key.D.Text(16), key.Primes[0].String(), "Primes:"} {
		if strings.Contains(out, secret) {
			t.Fatalf("printed key material (%.20s…):\n%.600s", secret, out)
		}
	}
	if !strings.Contains(out, "PrivateKeyJWT{alg: RS256, kid: "+src.KeyID()+"}") {
		t.Errorf("printed:\n%.600s", out)
	}
}

// TestPrivateKeyJWTConfig: bad keys and settings are configuration errors.
func TestPrivateKeyJWTConfig(t *testing.T) {
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	for _, tt := range []struct {
		name string
		cfg  PrivateKeyJWTConfig
	}{
		{"no key", PrivateKeyJWTConfig{}},
		{"RSA key too small", PrivateKeyJWTConfig{Key: small}},
		{"alg of another key type", PrivateKeyJWTConfig{Key: testKeys()["ES256"], Algorithm: "RS256"}},
		{"unknown alg", PrivateKeyJWTConfig{Key: testKeys()["RS256"], Algorithm: "HS256"}},
		{"lifetime over 5 minutes", PrivateKeyJWTConfig{Key: testKeys()["RS256"], Lifetime: 6 * time.Minute}},
	} {
		if _, err := NewPrivateKeyJWT(tt.cfg); !errors.Is(err, auth.ErrInvalidConfig) {
			t.Errorf("%s: err = %v, want ErrInvalidConfig", tt.name, err)
		}
	}
	src, _ := NewPrivateKeyJWT(PrivateKeyJWTConfig{Key: testKeys()["ES256"]})
	if _, err := NewClientCredentials(ClientCredentialsConfig{OAuthConfig: OAuthConfig{Endpoints: Endpoints{TokenURL: "https://idp.example/token"},
		ClientID: "robot", ClientAssertion: src, ClientSecret: auth.NewSecret("s")}}); !errors.Is(err, auth.ErrInvalidConfig) {
		t.Errorf("assertion and secret together: %v", err)
	}
}

// TestParsePrivateKey: PEM (PKCS #8, PKCS #1, SEC 1) and JWK keys of each
// type load and sign assertions that verify; broken input is an error that
// holds none of it.
func TestParsePrivateKey(t *testing.T) {
	r := testKeys()["RS256"].(*rsa.PrivateKey)
	e := testKeys()["ES256"].(*ecdsa.PrivateKey)
	ed := testKeys()["EdDSA"]
	pkcs8 := func(k any) []byte {
		b, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: b})
	}
	sec1, _ := x509.MarshalECPrivateKey(e)
	pems := map[string][]byte{
		"PKCS #8 RSA":     pkcs8(r),
		"PKCS #8 ECDSA":   pkcs8(e),
		"PKCS #8 Ed25519": pkcs8(ed),
		"PKCS #1":         pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(r)}),
		"SEC 1":           pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}),
	}
	for name, data := range pems {
		k, err := ParsePrivateKeyPEM(data)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		checkSigns(t, name, k)
	}
	d, err := e.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	point, err := e.PublicKey.Bytes() // 0x04 || x || y
	if err != nil {
		t.Fatal(err)
	}
	ecJWK, _ := json.Marshal(map[string]string{"kty": "EC", "crv": "P-256", "x": b64(point[1:33]), "y": b64(point[33:]), "d": b64(d)})
	k, err := ParsePrivateKeyJWK(ecJWK)
	if err != nil {
		t.Fatalf("EC JWK: %v", err)
	}
	checkSigns(t, "EC JWK", k)

	secretish := "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC-not-really"
	for name, data := range map[string][]byte{
		"no PEM":    []byte(secretish),
		"malformed": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte(secretish)}),
		"encrypted": pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte(secretish)}),
		"a cert":    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte(secretish)}),
	} {
		_, err := ParsePrivateKeyPEM(data)
		if err == nil || strings.Contains(err.Error(), "not-really") || strings.Contains(err.Error(), "MIIE") {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	if _, err := ParsePrivateKeyJWK([]byte(`{"kty":"EC","d":"` + secretish + `"}`)); err == nil || strings.Contains(err.Error(), "not-really") {
		t.Errorf("bad JWK: err = %v", err)
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func checkSigns(t *testing.T, name string, k crypto.Signer) {
	t.Helper()
	src, err := NewPrivateKeyJWT(PrivateKeyJWTConfig{Key: k})
	if err != nil {
		t.Errorf("%s: %v", name, err)
		return
	}
	a, err := src.Assertion(context.Background(), AssertionRequest{ClientID: "c", Audience: "https://idp/token", Now: time.Now()})
	if err != nil {
		t.Errorf("%s: %v", name, err)
		return
	}
	if _, err := jwt.Parse(a.Reveal(), func(*jwt.Token) (any, error) { return k.Public(), nil }); err != nil {
		t.Errorf("%s: the assertion does not verify: %v", name, err)
	}
}
