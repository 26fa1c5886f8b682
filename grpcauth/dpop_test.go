package grpcauth_test

import (
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

// TestJWTValidatorDPoP: over gRPC, a DPoP-bound token (cnf.jkt) passes
// only as "authorization: DPoP <token>" with one "dpop" proof made with
// its key for this RPC (POST https://<authority>/<service>/<method>), its
// hash, recent and never seen before; an unbound token passes as Bearer
// unless the validator requires DPoP, and never under the DPoP scheme.
func TestJWTValidatorDPoP(t *testing.T) {
	ks := rsaKeys()
	clk := authtest.NewClock(time.Time{})
	now := clk.Now()
	key, _ := auth.NewDPoPKey(nil)
	thief, _ := auth.NewDPoPKey(nil)
	bound := sign(t, jwt.SigningMethodRS256, ks[0], "k1", goodClaims(now, jwt.MapClaims{"cnf": map[string]any{"jkt": key.Thumbprint()}}))
	plain := sign(t, jwt.SigningMethodRS256, ks[0], "k1", goodClaims(now, nil))
	const check = "https://bufnet/grpc.health.v1.Health/Check"
	proof := func(k *auth.DPoPKey, method, uri, token string, at time.Time) string {
		p, err := k.Proof(method, uri, token, "", at)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	replayed := proof(key, "POST", check, bound, now)

	for _, require := range []bool{false, true} {
		v, err := grpcauth.NewJWTValidator(grpcauth.JWTConfig{Issuer: issuer, Audience: audience,
			Keys: map[string]crypto.PublicKey{"k1": &ks[0].PublicKey}, Clock: clk, RequireDPoP: require})
		if err != nil {
			t.Fatal(err)
		}
		si, err := grpcauth.NewServerInterceptors(grpcauth.ServerConfig{Validator: v})
		if err != nil {
			t.Fatal(err)
		}
		client, capture := authServer(t, si)
		for _, tt := range []struct {
			name string
			md   metadata.MD
			ok   bool
		}{
			{"bound token with its proof", metadata.Pairs("authorization", "DPoP "+bound, "dpop", replayed), true},
			{"the same proof again", metadata.Pairs("authorization", "DPoP "+bound, "dpop", replayed), false},
			{"lowercase scheme", metadata.Pairs("authorization", "dpop "+bound, "dpop", proof(key, "POST", check, bound, now)), true},
			{"bound token as Bearer", metadata.Pairs("authorization", "Bearer "+bound), false},
			{"bound token without a proof", metadata.Pairs("authorization", "DPoP "+bound), false},
			{"two proofs", metadata.Pairs("authorization", "DPoP "+bound, "dpop", proof(key, "POST", check, bound, now), "dpop", proof(key, "POST", check, bound, now)), false},
			{"a thief's key", metadata.Pairs("authorization", "DPoP "+bound, "dpop", proof(thief, "POST", check, bound, now)), false},
			{"a proof of another RPC", metadata.Pairs("authorization", "DPoP "+bound, "dpop", proof(key, "POST", "https://bufnet/grpc.health.v1.Health/Watch", bound, now)), false},
			{"a proof of another server", metadata.Pairs("authorization", "DPoP "+bound, "dpop", proof(key, "POST", "https://elsewhere/grpc.health.v1.Health/Check", bound, now)), false},
			{"a proof of another token", metadata.Pairs("authorization", "DPoP "+bound, "dpop", proof(key, "POST", check, plain, now)), false},
			{"a stale proof", metadata.Pairs("authorization", "DPoP "+bound, "dpop", proof(key, "POST", check, bound, now.Add(-2*time.Minute))), false},
			{"unbound token as DPoP", metadata.Pairs("authorization", "DPoP "+plain, "dpop", proof(key, "POST", check, plain, now)), false},
			{"unbound token as Bearer", metadata.Pairs("authorization", "Bearer "+plain), !require},
		} {
			t.Run(tt.name, func(t *testing.T) {
				_, err := client.Check(metadata.NewOutgoingContext(t.Context(), tt.md), &healthpb.HealthCheckRequest{})
				if tt.ok && (err != nil || capture.get() == nil || capture.get().Subject != "user-42") {
					t.Errorf("require=%v: %v", require, err)
				}
				if !tt.ok && status.Code(err) != codes.Unauthenticated {
					t.Errorf("require=%v: %v, want Unauthenticated", require, err)
				}
			})
		}
		replayed = proof(key, "POST", check, bound, now) // a new one for the next validator
		v.Close()
	}
}

// TestJWTValidatorDPoPBareTokenWire: with a wire that carries the bare
// token (no scheme to name), a bound token passes with a valid "dpop"
// proof beside it and is refused without one.
func TestJWTValidatorDPoPBareTokenWire(t *testing.T) {
	ks := rsaKeys()
	clk := authtest.NewClock(time.Time{})
	now := clk.Now()
	key, _ := auth.NewDPoPKey(nil)
	bound := sign(t, jwt.SigningMethodRS256, ks[0], "k1", goodClaims(now, jwt.MapClaims{"cnf": map[string]any{"jkt": key.Thumbprint()}}))
	wire := auth.Wire{MessageService: auth.Field{Name: "token"}}
	v, err := grpcauth.NewJWTValidator(grpcauth.JWTConfig{Issuer: issuer, Audience: audience,
		Keys: map[string]crypto.PublicKey{"k1": &ks[0].PublicKey}, Clock: clk, Wire: wire})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	si, err := grpcauth.NewServerInterceptors(grpcauth.ServerConfig{Validator: v})
	if err != nil {
		t.Fatal(err)
	}
	client, _ := authServer(t, si)
	proof, err := key.Proof("POST", "https://bufnet/grpc.health.v1.Health/Check", bound, "", now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Check(metadata.NewOutgoingContext(t.Context(), metadata.Pairs("token", bound, "dpop", proof)), &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("bare token with its proof: %v", err)
	}
	if _, err := client.Check(metadata.NewOutgoingContext(t.Context(), metadata.Pairs("token", bound)), &healthpb.HealthCheckRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("bare token without a proof: %v", err)
	}
}

// TestJWTValidatorDPoPAuthorities: with DPoPAuthorities, a token and
// proof made for another service that shares the audience are refused
// even when the caller names that service's authority; this service's own
// authority passes.
func TestJWTValidatorDPoPAuthorities(t *testing.T) {
	ks := rsaKeys()
	clk := authtest.NewClock(time.Time{})
	now := clk.Now()
	key, _ := auth.NewDPoPKey(nil)
	bound := sign(t, jwt.SigningMethodRS256, ks[0], "k1", goodClaims(now, jwt.MapClaims{"cnf": map[string]any{"jkt": key.Thumbprint()}}))
	if _, err := grpcauth.NewJWTValidator(grpcauth.JWTConfig{Issuer: issuer, Audience: audience,
		Keys: map[string]crypto.PublicKey{"k1": &ks[0].PublicKey}, DPoPAuthorities: []string{"https://x"}}); !errors.Is(err, auth.ErrInvalidConfig) {
		t.Errorf("a URL as an authority: %v", err)
	}
	for _, tt := range []struct {
		authorities []string
		ok          bool
	}{{nil, true}, {[]string{"messages.example:443"}, false}, {[]string{"messages.example", "BUFNET"}, true}} {
		v, err := grpcauth.NewJWTValidator(grpcauth.JWTConfig{Issuer: issuer, Audience: audience,
			Keys: map[string]crypto.PublicKey{"k1": &ks[0].PublicKey}, Clock: clk, DPoPAuthorities: tt.authorities})
		if err != nil {
			t.Fatal(err)
		}
		si, _ := grpcauth.NewServerInterceptors(grpcauth.ServerConfig{Validator: v})
		client, _ := authServer(t, si)
		proof, _ := key.Proof("POST", "https://bufnet/grpc.health.v1.Health/Check", bound, "", now)
		_, err = client.Check(metadata.NewOutgoingContext(t.Context(), metadata.Pairs("authorization", "DPoP "+bound, "dpop", proof)), &healthpb.HealthCheckRequest{})
		if (err == nil) != tt.ok {
			t.Errorf("authorities %v: %v, want accepted %v", tt.authorities, err, tt.ok)
		}
		v.Close()
	}
}
