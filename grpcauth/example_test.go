package grpcauth_test

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"fmt"
	"net"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/test/bufconn"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/grpcauth"
)

// Example runs both sides in memory: a service that accepts the issuer's
// JWTs, and a client whose engine fetches them.
func Example() {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		panic(err)
	}

	// The service checks each call and may consult the caller's identity.
	v, err := grpcauth.NewJWTValidator(grpcauth.JWTConfig{
		Issuer:   "https://issuer.example",
		Audience: "messages",
		Keys:     map[string]crypto.PublicKey{"": pub},
	})
	if err != nil {
		panic(err)
	}
	si, err := grpcauth.NewServerInterceptors(grpcauth.ServerConfig{
		Validator: v,
		Authorize: func(_ context.Context, method string, id *grpcauth.Identity) error {
			fmt.Println(method, "called by", id.Subject)
			return nil
		},
	})
	if err != nil {
		panic(err)
	}
	srv := grpc.NewServer(si.ServerOptions()...)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	lis := bufconn.Listen(1 << 20)
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	// The client: the engine's fetch stands in for a grant.
	eng, err := auth.NewEngine(auth.EngineConfig{
		Fetch: func(context.Context, *auth.Token) (*auth.Token, error) {
			exp := time.Now().Add(time.Hour)
			s, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{
				"iss": "https://issuer.example", "aud": "messages", "sub": "alice", "exp": exp.Unix(),
			}).SignedString(priv)
			return &auth.Token{AccessToken: auth.NewSecret(s), Expiry: exp}, err
		},
	})
	if err != nil {
		panic(err)
	}
	defer eng.Close()
	opts, err := grpcauth.DialOptions(eng, grpcauth.ClientConfig{
		// An in-memory channel to "localhost": insecure, for this example only.
		AllowInsecureLoopback: true,
		TransportCredentials:  insecure.NewCredentials(),
	})
	if err != nil {
		panic(err)
	}
	conn, err := grpc.NewClient("passthrough:///localhost", append(opts,
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }))...)
	if err != nil {
		panic(err)
	}
	defer conn.Close()

	resp, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	fmt.Println(resp.GetStatus(), err)
	// Output:
	// /grpc.health.v1.Health/Check called by alice
	// SERVING <nil>
}
