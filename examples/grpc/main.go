// Command grpc runs both sides of an authenticated gRPC message service.
//
// The server accepts bearer JWTs from an OAuth provider (checked against
// its JWKS) and API keys, with grpcauth's server interceptors, and lets a
// policy hook decide which caller may call which method. The client logs
// in with the client credentials grant and authenticates every RPC with
// grpcauth's per-RPC credentials, which refresh the token as needed. The
// provider is an embedded authtest provider. Secrets are masked in
// everything it prints.
//
//	go run ./examples/grpc [-v]
package main

import (
	"context"
	"crypto/subtle"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/authtest"
	"github.com/authkit-go/authkit/examples/internal/demo"
	"github.com/authkit-go/authkit/grpcauth"
	"github.com/authkit-go/authkit/handlers"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "grpc:", err)
		os.Exit(1)
	}
}

// The service's audience, and the scope its policy requires.
const (
	audience      = "messages"
	requiredScope = "messages:read"
)

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("grpc", flag.ContinueOnError)
	fs.SetOutput(stdout)
	verbose := fs.Bool("v", false, "print every RPC with its (masked) credentials")
	if err := fs.Parse(args); err != nil {
		return err
	}
	out := demo.NewOut(stdout)

	idp := authtest.NewProvider(authtest.ProviderConfig{
		Audience: audience,
		Clients: []authtest.Client{
			{ID: "worker", Secret: "worker-secret-5d2f9a", Grants: []string{authtest.GrantClientCredentials}},
			{ID: "reporter", Secret: "reporter-secret-81c0e7", Grants: []string{authtest.GrantClientCredentials}},
		},
	})
	defer idp.Close()

	addr, stop, err := serve(idp, out)
	if err != nil {
		return err
	}
	defer stop()
	out.Printf("message service on %s, trusting %s\n", addr, idp.Issuer())

	tests := []struct {
		name   string
		client string
		secret string
		scopes []string
		want   codes.Code
	}{
		{"worker with scope " + requiredScope, "worker", "worker-secret-5d2f9a", []string{requiredScope}, codes.OK},
		{"reporter without the scope", "reporter", "reporter-secret-81c0e7", []string{"reports:write"}, codes.PermissionDenied},
	}
	for _, tt := range tests {
		h, err := handlers.NewClientCredentials(handlers.ClientCredentialsConfig{OAuthConfig: handlers.OAuthConfig{
			Endpoints:    handlers.Endpoints{TokenURL: idp.TokenURL()},
			ClientID:     tt.client,
			ClientSecret: auth.NewSecret(tt.secret),
			Scopes:       tt.scopes,
		}})
		if err != nil {
			return err
		}
		defer h.Close()
		code, err := check(ctx, out, addr, h, *verbose)
		if code != tt.want {
			return fmt.Errorf("%s: got %v (%v), want %v", tt.name, code, err, tt.want)
		}
		out.Printf("client %s: health check -> %v\n", tt.name, describe(code, err))
	}

	// An API key the service knows.
	key, err := handlers.NewAPIKeys(handlers.APIKeysConfig{KeyID: "ops", Key: auth.NewSecret("ops-key-0c4e1b77a9"), Username: "ops-team"})
	if err != nil {
		return err
	}
	code, err := check(ctx, out, addr, key, *verbose)
	if code != codes.OK {
		return fmt.Errorf("API key: got %v (%v), want OK", code, err)
	}
	out.Printf("client with API key %q: health check -> %v\n", "ops", describe(code, err))

	// A channel without per-RPC credentials.
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if status.Code(err) != codes.Unauthenticated {
		return fmt.Errorf("no credentials: got %v, want Unauthenticated", err)
	}
	out.Printf("client without credentials: health check -> %v\n", describe(status.Code(err), err))
	return nil
}

// serve starts the message service on a free loopback port: the standard
// health service behind grpcauth's interceptors.
func serve(idp *authtest.Provider, out *demo.Out) (addr string, stop func(), err error) {
	jwts, err := grpcauth.NewJWTValidator(grpcauth.JWTConfig{
		Issuer:         idp.Issuer(),
		Audience:       audience,
		JWKSURL:        idp.JWKSURL(),
		RequiredClaims: []string{"sub"},
	})
	if err != nil {
		return "", nil, err
	}
	keys, err := grpcauth.NewAPIKeyValidator(grpcauth.APIKeyConfig{
		Lookup: func(_ context.Context, id string) (*grpcauth.APIKey, error) {
			if subtle.ConstantTimeCompare([]byte(id), []byte("ops")) == 1 {
				return &grpcauth.APIKey{Secret: auth.NewSecret("ops-key-0c4e1b77a9"), Username: "ops-team"}, nil
			}
			return nil, nil // unknown key
		},
	})
	if err != nil {
		jwts.Close()
		return "", nil, err
	}
	si, err := grpcauth.NewServerInterceptors(grpcauth.ServerConfig{
		Validator: grpcauth.ValidatorList{jwts, keys},
		Authorize: func(_ context.Context, method string, id *grpcauth.Identity) error {
			how := "API key " + id.KeyID
			if id.KeyID == "" {
				scope, _ := id.Claims["scope"].(string)
				how = fmt.Sprintf("JWT, scope %q", scope)
				if !slices.Contains(strings.Fields(scope), requiredScope) {
					out.Printf("  [server] %s by %s (%s): denied\n", method, id.Subject, how)
					return fmt.Errorf("%s needs the scope %q", method, requiredScope)
				}
			}
			out.Printf("  [server] %s by %s (%s): allowed\n", method, id.Subject, how)
			return nil
		},
	})
	if err != nil {
		jwts.Close()
		return "", nil, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		jwts.Close()
		return "", nil, err
	}
	srv := grpc.NewServer(si.ServerOptions()...)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go func() { _ = srv.Serve(lis) }()
	return lis.Addr().String(), func() { srv.Stop(); jwts.Close() }, nil
}

// check calls the health service over a channel that authenticates every
// RPC with src.
func check(ctx context.Context, out *demo.Out, addr string, src grpcauth.MetadataSource, verbose bool) (codes.Code, error) {
	opts, err := grpcauth.DialOptions(src, grpcauth.ClientConfig{
		AllowInsecureLoopback: true, // loopback without TLS, for this example only
		TransportCredentials:  insecure.NewCredentials(),
	})
	if err != nil {
		return codes.Unknown, err
	}
	if verbose {
		opts = append(opts, grpc.WithChainUnaryInterceptor(demo.UnaryInterceptor(out, "  >", src.MessageServiceMetadata)))
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return codes.Unknown, err
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err == nil && resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		err = errors.New("not serving: " + resp.GetStatus().String())
	}
	return status.Code(err), err
}

func describe(code codes.Code, err error) string {
	if err == nil {
		return "SERVING"
	}
	return code.String() + ": " + status.Convert(err).Message()
}
