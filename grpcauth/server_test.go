package grpcauth_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/authtest"
	"github.com/authkit-go/authkit/grpcauth"
)

const (
	issuer   = "https://issuer.test/realms/platform"
	audience = "message-service"
)

var rsaKeys = sync.OnceValue(func() [3]*rsa.PrivateKey {
	var ks [3]*rsa.PrivateKey
	for i := range ks {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		ks[i] = k
	}
	return ks
})

// sign makes a JWT with the given header fields and claims.
func sign(t *testing.T, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// goodClaims are valid claims at now; edits change or delete (nil) some.
func goodClaims(now time.Time, edits jwt.MapClaims) jwt.MapClaims {
	c := jwt.MapClaims{
		"iss":                issuer,
		"aud":                []string{audience, "other"},
		"sub":                "user-42",
		"preferred_username": "alice",
		"iat":                now.Add(-time.Minute).Unix(),
		"exp":                now.Add(time.Hour).Unix(),
	}
	for k, v := range edits {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// idCapture records the identity the handler's ctx carries.
type idCapture struct {
	mu sync.Mutex // guards id
	id *grpcauth.Identity
}

func (c *idCapture) set(ctx context.Context) {
	id, _ := grpcauth.IdentityFromContext(ctx)
	c.mu.Lock()
	c.id = id
	c.mu.Unlock()
}

func (c *idCapture) get() *grpcauth.Identity {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.id
}

// authServer serves the health service behind si and returns a plain
// client (no credentials of its own) and the identity capture.
func authServer(t *testing.T, si *grpcauth.ServerInterceptors) (healthpb.HealthClient, *idCapture) {
	t.Helper()
	capture := &idCapture{}
	opts := append(si.ServerOptions(),
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			capture.set(ctx)
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			capture.set(ss.Context())
			return h(srv, ss)
		}),
	)
	c := dial(t, "passthrough:///bufnet", bufServer(t, opts...), grpc.WithTransportCredentials(insecure.NewCredentials()))
	return c, capture
}

func TestJWTValidatorOverGRPC(t *testing.T) {
	ks := rsaKeys()
	clk := authtest.NewClock(time.Time{})
	now := clk.Now()
	v, err := grpcauth.NewJWTValidator(grpcauth.JWTConfig{
		Issuer:         issuer,
		Audience:       audience,
		Keys:           map[string]crypto.PublicKey{"k1": &ks[0].PublicKey},
		Algorithms:     []string{"RS256", "PS256"},
		RequiredClaims: []string{"sub"},
		Clock:          clk,
	})
	if err != nil {
		t.Fatal(err)
	}
	si, err := grpcauth.NewServerInterceptors(grpcauth.ServerConfig{
		Validator: v,
		Authorize: func(_ context.Context, method string, id *grpcauth.Identity) error {
			if id.Claims["role"] == "banned" {
				return errors.New("banned callers may not call " + method)
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	c, capture := authServer(t, si)

	pubDER, err := x509.MarshalPKIXPublicKey(&ks[0].PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	good := sign(t, jwt.SigningMethodRS256, ks[0], "k1", goodClaims(now, nil))
	none := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "k1", goodClaims(now, nil))
	parts := strings.Split(good, ".")

	const invalid = "grpcauth: invalid token"
	tests := []struct {
		name     string
		md       []string // key, value pairs
		wantCode codes.Code
		wantMsg  string // exact message, or a prefix ending in "..."
	}{
		{name: "valid", md: []string{"authorization", "Bearer " + good}},
		{name: "valid PS256 without kid", md: []string{"authorization", "Bearer " + sign(t, jwt.SigningMethodPS256, ks[0], "", goodClaims(now, nil))}},
		{name: "lowercase scheme", md: []string{"authorization", "bearer " + good}},
		{name: "within leeway", md: []string{"authorization", "Bearer " + sign(t, jwt.SigningMethodRS256, ks[0], "k1",
			goodClaims(now, jwt.MapClaims{"exp": now.Add(-10 * time.Second).Unix()}))}},
		{name: "missing metadata", wantCode: codes.Unauthenticated,
			wantMsg: `grpcauth: missing credentials: send metadata "authorization: Bearer <token>"`},
		{name: "wrong scheme", md: []string{"authorization", "Basic dXNlcjpwYXNz"}, wantCode: codes.Unauthenticated,
			wantMsg: `grpcauth: the "authorization" metadata must read "authorization: Bearer <token>"`},
		{name: "two tokens", md: []string{"authorization", "Bearer " + good, "authorization", "Bearer " + good}, wantCode: codes.Unauthenticated,
			wantMsg: `grpcauth: send one "authorization" metadata entry, not 2`},
		{name: "malformed JWT", md: []string{"authorization", "Bearer not.a-jwt"}, wantCode: codes.Unauthenticated,
			wantMsg: "grpcauth: the bearer token is not a well-formed JWT"},
		{name: "wrong signature", md: []string{"authorization", "Bearer " + sign(t, jwt.SigningMethodRS256, ks[1], "k1", goodClaims(now, nil))},
			wantCode: codes.Unauthenticated, wantMsg: invalid},
		{name: "tampered claims", md: []string{"authorization", "Bearer " + parts[0] + "." +
			base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"`+issuer+`","aud":"`+audience+`","sub":"admin","exp":9999999999}`)) + "." + parts[2]},
			wantCode: codes.Unauthenticated, wantMsg: invalid},
		{name: "alg none", md: []string{"authorization", "Bearer " + none}, wantCode: codes.Unauthenticated, wantMsg: invalid},
		{name: "HMAC with the public key (PEM)", md: []string{"authorization", "Bearer " + sign(t, jwt.SigningMethodHS256, pubPEM, "k1", goodClaims(now, nil))},
			wantCode: codes.Unauthenticated, wantMsg: invalid},
		{name: "HMAC with the public key (DER)", md: []string{"authorization", "Bearer " + sign(t, jwt.SigningMethodHS256, pubDER, "k1", goodClaims(now, nil))},
			wantCode: codes.Unauthenticated, wantMsg: invalid},
		{name: "algorithm not allowed", md: []string{"authorization", "Bearer " + sign(t, jwt.SigningMethodRS384, ks[0], "k1", goodClaims(now, nil))},
			wantCode: codes.Unauthenticated, wantMsg: invalid},
		{name: "unknown kid", md: []string{"authorization", "Bearer " + sign(t, jwt.SigningMethodRS256, ks[0], "k9", goodClaims(now, nil))},
			wantCode: codes.Unauthenticated, wantMsg: invalid},
		{name: "expired", md: []string{"authorization", "Bearer " + sign(t, jwt.SigningMethodRS256, ks[0], "k1",
			goodClaims(now, jwt.MapClaims{"exp": now.Add(-2 * time.Minute).Unix()}))},
			wantCode: codes.Unauthenticated, wantMsg: "grpcauth: the token is expired or not valid yet; get a new token and retry"},
		{name: "not valid yet", md: []string{"authorization", "Bearer " + sign(t, jwt.SigningMethodRS256, ks[0], "k1",
			goodClaims(now, jwt.MapClaims{"nbf": now.Add(5 * time.Minute).Unix()}))},
			wantCode: codes.Unauthenticated, wantMsg: "grpcauth: the token is expired or not valid yet; get a new token and retry"},
		{name: "wrong audience", md: []string{"authorization", "Bearer " + sign(t, jwt.SigningMethodRS256, ks[0], "k1",
			goodClaims(now, jwt.MapClaims{"aud": "hub"}))},
			wantCode: codes.Unauthenticated, wantMsg: "grpcauth: the token was not issued for this service (check its issuer and audience)"},
		{name: "wrong issuer", md: []string{"authorization", "Bearer " + sign(t, jwt.SigningMethodRS256, ks[0], "k1",
			goodClaims(now, jwt.MapClaims{"iss": "https://evil.test"}))},
			wantCode: codes.Unauthenticated, wantMsg: "grpcauth: the token was not issued for this service (check its issuer and audience)"},
		{name: "no exp", md: []string{"authorization", "Bearer " + sign(t, jwt.SigningMethodRS256, ks[0], "k1",
			goodClaims(now, jwt.MapClaims{"exp": nil}))},
			wantCode: codes.Unauthenticated, wantMsg: "grpcauth: the token lacks a claim this service requires (iss, aud, exp)"},
		{name: "no sub", md: []string{"authorization", "Bearer " + sign(t, jwt.SigningMethodRS256, ks[0], "k1",
			goodClaims(now, jwt.MapClaims{"sub": nil}))},
			wantCode: codes.Unauthenticated, wantMsg: `grpcauth: the token lacks the claim "sub" this service requires`},
		{name: "policy denies", md: []string{"authorization", "Bearer " + sign(t, jwt.SigningMethodRS256, ks[0], "k1",
			goodClaims(now, jwt.MapClaims{"role": "banned"}))},
			wantCode: codes.PermissionDenied, wantMsg: "banned callers may not call /grpc.health.v1.Health/Check"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			capture.set(context.Background())
			ctx := t.Context()
			if len(tt.md) > 0 {
				ctx = metadata.AppendToOutgoingContext(ctx, tt.md...)
			}
			_, err := c.Check(ctx, &healthpb.HealthCheckRequest{})
			st := status.Convert(err)
			if st.Code() != tt.wantCode {
				t.Fatalf("code %v (%q), want %v", st.Code(), st.Message(), tt.wantCode)
			}
			if tt.wantCode != codes.OK {
				if st.Message() != tt.wantMsg {
					t.Errorf("message %q, want %q", st.Message(), tt.wantMsg)
				}
				if tt.wantCode == codes.Unauthenticated && capture.get() != nil {
					t.Error("the handler ran")
				}
				return
			}
			id := capture.get()
			if id == nil || id.Subject != "user-42" || id.Username != "alice" || id.Issuer != issuer ||
				!id.Expiry.After(now.Add(-time.Minute)) || id.Claims["sub"] != "user-42" || id.KeyID != "" {
				t.Errorf("identity %+v", id)
			}
		})
	}

	t.Run("expiry reached on the fake clock", func(t *testing.T) {
		c2 := authtest.NewClock(now)
		v2, err := grpcauth.NewJWTValidator(grpcauth.JWTConfig{Issuer: issuer, Audience: audience,
			Keys: map[string]crypto.PublicKey{"k1": &ks[0].PublicKey}, Leeway: -1, Clock: c2})
		if err != nil {
			t.Fatal(err)
		}
		md := metadata.Pairs("authorization", "Bearer "+good)
		if _, err := v2.Validate(t.Context(), md); err != nil {
			t.Fatal(err)
		}
		c2.Advance(time.Hour)
		if _, err := v2.Validate(t.Context(), md); !errors.Is(err, grpcauth.ErrExpired) || !errors.Is(err, jwt.ErrTokenExpired) {
			t.Fatalf("got %v, want ErrExpired", err)
		}
	})
}

func TestStreamServerInterceptor(t *testing.T) {
	ks := rsaKeys()
	clk := authtest.NewClock(time.Time{})
	v, err := grpcauth.NewJWTValidator(grpcauth.JWTConfig{Issuer: issuer, Audience: audience,
		Keys: map[string]crypto.PublicKey{"k1": &ks[0].PublicKey}, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	si, err := grpcauth.NewServerInterceptors(grpcauth.ServerConfig{Validator: v})
	if err != nil {
		t.Fatal(err)
	}
	c, capture := authServer(t, si)
	tests := []struct {
		name     string
		token    string
		wantCode codes.Code
	}{
		{name: "valid", token: sign(t, jwt.SigningMethodRS256, ks[0], "k1", goodClaims(clk.Now(), nil))},
		{name: "wrong signature", token: sign(t, jwt.SigningMethodRS256, ks[1], "k1", goodClaims(clk.Now(), nil)), wantCode: codes.Unauthenticated},
		{name: "missing", wantCode: codes.Unauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			capture.set(context.Background())
			ctx := t.Context()
			if tt.token != "" {
				ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tt.token)
			}
			_, err := watchOnce(ctx, c)
			if got := status.Code(err); got != tt.wantCode {
				t.Fatalf("code %v (%v), want %v", got, err, tt.wantCode)
			}
			id := capture.get()
			if (tt.wantCode == codes.OK) != (id != nil && id.Subject == "user-42") {
				t.Errorf("identity in the stream's context: %+v", id)
			}
		})
	}
}

// jwks serves a JWK Set of RSA keys and counts the requests.
type jwks struct {
	mu    sync.Mutex // guards keys
	keys  map[string]*rsa.PublicKey
	count atomic.Int64
}

func (j *jwks) add(kid string, k *rsa.PublicKey) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.keys[kid] = k
}

func (j *jwks) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	j.count.Add(1)
	j.mu.Lock()
	defer j.mu.Unlock()
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	for kid, k := range j.keys {
		set.Keys = append(set.Keys, map[string]string{
			"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
			"n": base64.RawURLEncoding.EncodeToString(k.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes()),
		})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(set)
}

// jwksServer is a gRPC server whose JWT validator takes its keys from the
// JWKS at jwksURL, and a health client of it.
func jwksServer(t *testing.T, jwksURL string, clk auth.Clock) (healthpb.HealthClient, *idCapture) {
	t.Helper()
	v, err := grpcauth.NewJWTValidator(grpcauth.JWTConfig{Issuer: issuer, Audience: audience, JWKSURL: jwksURL, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	si, err := grpcauth.NewServerInterceptors(grpcauth.ServerConfig{Validator: v})
	if err != nil {
		t.Fatal(err)
	}
	return authServer(t, si)
}

func TestJWTValidatorJWKS(t *testing.T) {
	ks := rsaKeys()
	clk := authtest.NewClock(time.Time{})
	set := &jwks{keys: map[string]*rsa.PublicKey{"k1": &ks[0].PublicKey}}
	srv := httptest.NewServer(set)
	defer srv.Close()
	c, capture := jwksServer(t, srv.URL, clk)
	check := func(token string) error {
		ctx := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+token)
		_, err := c.Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	}

	if err := check(sign(t, jwt.SigningMethodRS256, ks[0], "k1", goodClaims(clk.Now(), nil))); err != nil {
		t.Fatal(err)
	}
	if id := capture.get(); id == nil || id.Subject != "user-42" {
		t.Errorf("identity %+v", id)
	}
	if err := check(sign(t, jwt.SigningMethodRS256, ks[1], "k1", goodClaims(clk.Now(), nil))); status.Code(err) != codes.Unauthenticated {
		t.Errorf("wrong signature: got %v", err)
	}
	// The issuer rotates to a new key: the first token naming it makes the
	// validator fetch the set again at once.
	set.add("k2", &ks[2].PublicKey)
	before := set.count.Load()
	if err := check(sign(t, jwt.SigningMethodRS256, ks[2], "k2", goodClaims(clk.Now(), nil))); err != nil {
		t.Fatalf("rotated key: %v", err)
	}
	if after := set.count.Load(); after != before+1 {
		t.Errorf("%d JWK Set fetches for the new key, want 1", after-before)
	}
}

func TestJWTValidatorKeyTypeGuard(t *testing.T) {
	ks := rsaKeys()
	clk := authtest.NewClock(time.Time{})
	secret := []byte(strings.Repeat("s", 32))
	v, err := grpcauth.NewJWTValidator(grpcauth.JWTConfig{
		Issuer: issuer, Audience: audience, Clock: clk,
		// HS256 is allowed for the HMAC key; it must never verify with the RSA key.
		Algorithms: []string{"RS256", "HS256"},
		Keys:       map[string]crypto.PublicKey{"rsa": &ks[0].PublicKey, "hmac": auth.NewSecret(string(secret))},
	})
	if err != nil {
		t.Fatal(err)
	}
	pubDER, _ := x509.MarshalPKIXPublicKey(&ks[0].PublicKey)
	tests := []struct {
		name  string
		token string
		want  error
	}{
		{name: "HMAC secret", token: sign(t, jwt.SigningMethodHS256, secret, "hmac", goodClaims(clk.Now(), nil))},
		{name: "RSA key", token: sign(t, jwt.SigningMethodRS256, ks[0], "rsa", goodClaims(clk.Now(), nil))},
		{name: "HMAC with the RSA key's kid", token: sign(t, jwt.SigningMethodHS256, pubDER, "rsa", goodClaims(clk.Now(), nil)),
			want: grpcauth.ErrInvalidCredentials},
		{name: "HMAC without kid, signed with the RSA key", token: sign(t, jwt.SigningMethodHS256, pubDER, "", goodClaims(clk.Now(), nil)),
			want: grpcauth.ErrInvalidCredentials},
		{name: "RS256 with the HMAC key's kid", token: sign(t, jwt.SigningMethodRS256, ks[0], "hmac", goodClaims(clk.Now(), nil)),
			want: grpcauth.ErrInvalidCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := v.Validate(t.Context(), metadata.Pairs("authorization", "Bearer "+tt.token))
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestNewJWTValidatorConfig(t *testing.T) {
	pub := &rsaKeys()[0].PublicKey
	keys := map[string]crypto.PublicKey{"k1": pub}
	tests := []struct {
		name string
		cfg  grpcauth.JWTConfig
	}{
		{name: "no issuer", cfg: grpcauth.JWTConfig{Audience: audience, Keys: keys}},
		{name: "no audience", cfg: grpcauth.JWTConfig{Issuer: issuer, Keys: keys}},
		{name: "no keys", cfg: grpcauth.JWTConfig{Issuer: issuer, Audience: audience}},
		{name: "alg none", cfg: grpcauth.JWTConfig{Issuer: issuer, Audience: audience, Keys: keys, Algorithms: []string{"RS256", "none"}}},
		{name: "unknown alg", cfg: grpcauth.JWTConfig{Issuer: issuer, Audience: audience, Keys: keys, Algorithms: []string{"XY256"}}},
		{name: "short HMAC key", cfg: grpcauth.JWTConfig{Issuer: issuer, Audience: audience, Keys: map[string]crypto.PublicKey{"h": []byte("short")}}},
		{name: "private key type", cfg: grpcauth.JWTConfig{Issuer: issuer, Audience: audience, Keys: map[string]crypto.PublicKey{"k": "secret"}}},
		{name: "plain http JWKS", cfg: grpcauth.JWTConfig{Issuer: issuer, Audience: audience, JWKSURL: "http://issuer.example.com/jwks"}},
		{name: "relative JWKS", cfg: grpcauth.JWTConfig{Issuer: issuer, Audience: audience, JWKSURL: "/jwks"}},
		{name: "bad wire", cfg: grpcauth.JWTConfig{Issuer: issuer, Audience: audience, Keys: keys, Wire: auth.Wire{MessageService: auth.Field{Name: "grpc-x"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := grpcauth.NewJWTValidator(tt.cfg); !errors.Is(err, auth.ErrInvalidConfig) {
				t.Fatalf("got %v, want ErrInvalidConfig", err)
			}
		})
	}
	if _, err := grpcauth.NewServerInterceptors(grpcauth.ServerConfig{}); !errors.Is(err, auth.ErrInvalidConfig) {
		t.Errorf("NewServerInterceptors without a validator: %v", err)
	}
	if _, err := grpcauth.NewAPIKeyValidator(grpcauth.APIKeyConfig{}); !errors.Is(err, auth.ErrInvalidConfig) {
		t.Errorf("NewAPIKeyValidator without Lookup: %v", err)
	}
}

// TestJWTValidatorKeysUnavailable: when the key set cannot be fetched (the
// issuer answers 500), a token is refused with codes.Unavailable — try
// again — not Unauthenticated, which would tell the client its credential
// is bad and make it refresh for nothing.
func TestJWTValidatorKeysUnavailable(t *testing.T) {
	ks := rsaKeys()
	clk := authtest.NewClock(time.Time{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down", http.StatusInternalServerError)
	}))
	defer srv.Close()
	c, _ := jwksServer(t, srv.URL, clk)
	ctx := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+sign(t, jwt.SigningMethodRS256, ks[0], "k1", goodClaims(clk.Now(), nil)))
	if _, err := c.Check(ctx, &healthpb.HealthCheckRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("got %v, want codes.Unavailable", err)
	}
}
