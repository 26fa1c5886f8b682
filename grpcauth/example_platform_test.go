package grpcauth_test

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/authtest"
	"github.com/authkit-go/authkit/authtest/platform"
	"github.com/authkit-go/authkit/grpcauth"
	"github.com/authkit-go/authkit/handlers"
)

// A channel to a message service (here authtest's platform, which checks
// the provider's JWTs) authenticates every RPC with a handler's token.
// When the service answers Unauthenticated, the interceptor gets a new
// token and retries the call once.
func ExampleDialOptions() {
	prov := authtest.NewProvider(authtest.ProviderConfig{
		Audience: platform.DefaultAudience,
		Clients:  []authtest.Client{{ID: "worker", Secret: "s3cret"}},
	})
	defer prov.Close()
	plat, err := platform.New(platform.Config{Provider: prov})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer plat.Close()

	h, err := handlers.NewClientCredentials(handlers.ClientCredentialsConfig{OAuthConfig: handlers.OAuthConfig{
		Endpoints: handlers.Endpoints{TokenURL: prov.TokenURL()}, ClientID: "worker", ClientSecret: auth.NewSecret("s3cret"),
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer h.Close()
	opts, err := grpcauth.DialOptions(h, grpcauth.ClientConfig{
		// The platform listens on 127.0.0.1 without TLS: for local use only.
		AllowInsecureLoopback: true,
		TransportCredentials:  insecure.NewCredentials(),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	conn, err := grpc.NewClient(plat.MessageServiceAddr(), opts...)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()

	me, err := platform.WhoAmI(context.Background(), conn)
	fmt.Println(me.Subject, me.Method, err)

	plat.RejectNext(platform.ServiceMessages, 1) // e.g. the token was revoked
	me, err = platform.WhoAmI(context.Background(), conn)
	fmt.Println(me.Subject, err, "token fetches:", h.Stats().Fetches)
	// Output:
	// service-account-worker jwt <nil>
	// service-account-worker <nil> token fetches: 2
}
