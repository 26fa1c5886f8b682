package grpcauth_test

import (
	"context"
	"crypto"
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/authtest"
	"github.com/authkit-go/authkit/grpcauth"
)

// keyStore is an API-key lookup over a map; the id "down" fails.
func keyStore(keys map[string]*grpcauth.APIKey) func(context.Context, string) (*grpcauth.APIKey, error) {
	return func(_ context.Context, id string) (*grpcauth.APIKey, error) {
		if id == "down" {
			return nil, errors.New("key store unreachable")
		}
		return keys[id], nil
	}
}

func TestAPIKeysAndJWTsOverGRPC(t *testing.T) {
	ks := rsaKeys()
	clk := authtest.NewClock(time.Time{})
	jv, err := grpcauth.NewJWTValidator(grpcauth.JWTConfig{Issuer: issuer, Audience: audience,
		Keys: map[string]crypto.PublicKey{"k1": &ks[0].PublicKey}, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	kv, err := grpcauth.NewAPIKeyValidator(grpcauth.APIKeyConfig{Lookup: keyStore(map[string]*grpcauth.APIKey{
		"ci-bot": {Secret: auth.NewSecret("s3cret-value"), Subject: "svc:ci", Username: "ci"},
		"anon":   {Secret: auth.NewSecret("other-secret")},
	})})
	if err != nil {
		t.Fatal(err)
	}
	si, err := grpcauth.NewServerInterceptors(grpcauth.ServerConfig{
		Validator: grpcauth.ValidatorList{jv, kv},
		Public:    func(m string) bool { return m == "/grpc.health.v1.Health/List" },
	})
	if err != nil {
		t.Fatal(err)
	}
	c, capture := authServer(t, si)
	jwtTok := sign(t, jwt.SigningMethodRS256, ks[0], "k1", goodClaims(clk.Now(), nil))

	tests := []struct {
		name     string
		md       []string
		wantCode codes.Code
		wantMsg  string
		wantSub  string
		wantKey  string
	}{
		{name: "API key", md: []string{"x-api-key-id", "ci-bot", "x-api-key", "s3cret-value"}, wantSub: "svc:ci", wantKey: "ci-bot"},
		{name: "API key without subject", md: []string{"x-api-key-id", "anon", "x-api-key", "other-secret"}, wantSub: "anon", wantKey: "anon"},
		{name: "JWT", md: []string{"authorization", "Bearer " + jwtTok}, wantSub: "user-42"},
		{name: "nothing", wantCode: codes.Unauthenticated,
			wantMsg: `grpcauth: missing credentials: send metadata "authorization: Bearer <token>", or send metadata "x-api-key-id" and "x-api-key"`},
		{name: "unknown key id", md: []string{"x-api-key-id", "nobody", "x-api-key", "s3cret-value"}, wantCode: codes.Unauthenticated,
			wantMsg: "grpcauth: unknown API key or wrong secret"},
		{name: "wrong secret", md: []string{"x-api-key-id", "ci-bot", "x-api-key", "s3cret-valuf"}, wantCode: codes.Unauthenticated,
			wantMsg: "grpcauth: unknown API key or wrong secret"},
		{name: "another key's secret", md: []string{"x-api-key-id", "ci-bot", "x-api-key", "other-secret"}, wantCode: codes.Unauthenticated,
			wantMsg: "grpcauth: unknown API key or wrong secret"},
		{name: "secret without id", md: []string{"x-api-key", "s3cret-value"}, wantCode: codes.Unauthenticated,
			wantMsg: `grpcauth: send exactly one "x-api-key-id" and one "x-api-key" metadata entry`},
		{name: "key store down", md: []string{"x-api-key-id", "down", "x-api-key", "x"}, wantCode: codes.Unavailable,
			wantMsg: "grpcauth: the API key cannot be checked now; retry later"},
		{name: "bad JWT beside a good key", md: []string{"authorization", "Bearer x.y.z", "x-api-key-id", "ci-bot", "x-api-key", "s3cret-value"},
			wantCode: codes.Unauthenticated, wantMsg: "grpcauth: the bearer token is not a well-formed JWT"},
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
			if st.Code() != tt.wantCode || tt.wantCode != codes.OK && st.Message() != tt.wantMsg {
				t.Fatalf("got %v %q, want %v %q", st.Code(), st.Message(), tt.wantCode, tt.wantMsg)
			}
			if tt.wantCode != codes.OK {
				return
			}
			id := capture.get()
			if id == nil || id.Subject != tt.wantSub || id.KeyID != tt.wantKey {
				t.Errorf("identity %+v, want subject %q key %q", id, tt.wantSub, tt.wantKey)
			}
		})
	}

	t.Run("public method", func(t *testing.T) {
		capture.set(context.Background())
		if _, err := c.List(t.Context(), &healthpb.HealthListRequest{}); err != nil {
			t.Fatal(err)
		}
		if id := capture.get(); id != nil {
			t.Errorf("identity %+v on a public method", id)
		}
	})
}

// TestTokenWireEndToEnd runs the whole path with the "token: <t>" wire on
// both sides: an engine whose fetch signs JWTs, the client credentials, and
// the JWT validator.
func TestTokenWireEndToEnd(t *testing.T) {
	ks := rsaKeys()
	clk := authtest.NewClock(time.Time{})
	wire := auth.Wire{MessageService: auth.Field{Name: "token"}}
	eng, err := auth.NewEngine(auth.EngineConfig{
		Clock: clk,
		Wire:  wire,
		Fetch: func(context.Context, *auth.Token) (*auth.Token, error) {
			now := clk.Now()
			s, err := jwt.NewWithClaims(jwt.SigningMethodRS256, goodClaims(now, nil)).SignedString(ks[0])
			if err != nil {
				return nil, err
			}
			return &auth.Token{AccessToken: auth.NewSecret(s), Expiry: now.Add(time.Hour)}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()

	tests := []struct {
		name       string
		serverWire auth.Wire
		wantCode   codes.Code
	}{
		{name: "same wire", serverWire: wire},
		{name: "server expects authorization", wantCode: codes.Unauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jv, err := grpcauth.NewJWTValidator(grpcauth.JWTConfig{Issuer: issuer, Audience: audience, Wire: tt.serverWire,
				Keys: map[string]crypto.PublicKey{"": &ks[0].PublicKey}, Clock: clk})
			if err != nil {
				t.Fatal(err)
			}
			si, err := grpcauth.NewServerInterceptors(grpcauth.ServerConfig{Validator: jv})
			if err != nil {
				t.Fatal(err)
			}
			c := insecureLocal(t, eng, grpcauth.ClientConfig{Wire: wire}, si.ServerOptions()...)
			for range 2 {
				_, err := c.Check(t.Context(), &healthpb.HealthCheckRequest{})
				if got := status.Code(err); got != tt.wantCode {
					t.Fatalf("code %v (%v), want %v", got, err, tt.wantCode)
				}
			}
			if _, err := watchOnce(t.Context(), c); status.Code(err) != tt.wantCode {
				t.Fatalf("stream: %v, want %v", err, tt.wantCode)
			}
		})
	}
}
