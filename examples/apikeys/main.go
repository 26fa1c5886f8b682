// Command apikeys authenticates to every service of the platform with an
// API key: a key id and a secret, sent as "x-api-key-id" and "x-api-key"
// headers to the hub and the access manager and as gRPC metadata to the
// message service.
//
// It starts an embedded platform (authtest) that knows one key, then calls
// the hub and the access manager through a session and the message service
// through a gRPC channel with per-RPC credentials. Secrets are masked in
// everything it prints.
//
//	go run ./examples/apikeys [-v]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/authtest/platform"
	"github.com/authkit-go/authkit/examples/internal/demo"
	"github.com/authkit-go/authkit/grpcauth"
	"github.com/authkit-go/authkit/handlers"
	"github.com/authkit-go/authkit/session"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "apikeys:", err)
		os.Exit(1)
	}
}

// The key the embedded platform knows. A real program reads the secret from
// the environment or a secret store, never from its source.
const (
	keyID     = "key-7f3a"
	keySecret = "ak_live_2b9c41f0d6e84a7b93c5e1f2a8d07b64"
	keyOwner  = "ci-bot"
)

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("apikeys", flag.ContinueOnError)
	fs.SetOutput(stdout)
	verbose := fs.Bool("v", false, "print every request with its (masked) credentials")
	if err := fs.Parse(args); err != nil {
		return err
	}

	plat, err := platform.New(platform.Config{
		APIKeys: []platform.APIKey{{ID: keyID, Secret: keySecret, Username: keyOwner,
			Permissions: []string{"projects:read", "messages:send"}}},
	})
	if err != nil {
		return fmt.Errorf("starting the platform: %w", err)
	}
	defer plat.Close()
	fmt.Fprintf(stdout, "platform: hub %s, access manager %s, message service %s\n",
		plat.HubURL(), plat.AccessManagerURL(), plat.MessageServiceAddr())

	h, err := handlers.NewAPIKeys(handlers.APIKeysConfig{KeyID: keyID, Key: auth.NewSecret(keySecret), Username: keyOwner})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "handler: %v\n", h) // APIKeys prints itself without its key

	// What each service receives.
	hub, _ := h.HubRequestHeaders(ctx)
	am, _ := h.AccessManagerRequestHeaders(ctx)
	ms, _ := h.MessageServiceMetadata(ctx)
	fmt.Fprintf(stdout, "hub headers:             %s\n", demo.Fields(hub))
	fmt.Fprintf(stdout, "access manager headers:  %s\n", demo.Fields(am))
	fmt.Fprintf(stdout, "message service metadata: %s\n", demo.Fields(ms))

	// The hub and the access manager, through one session.
	out := demo.NewOut(stdout)
	cfg := session.Config{HubURL: plat.HubURL(), AccessManagerURL: plat.AccessManagerURL()}
	if *verbose {
		cfg.Transport = &demo.Transport{Out: out, Tag: "  >"}
	}
	s, err := session.New(h, cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	client := s.HTTPClient()

	var me platform.Me
	if err := demo.GetJSON(ctx, client, plat.HubURL()+platform.PathMe, &me); err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	fmt.Fprintf(stdout, "hub: GET /api/me -> %s (user %s, by %s)\n", me.Subject, me.Username, me.Method)
	var projects platform.Projects
	if err := demo.GetJSON(ctx, client, plat.HubURL()+platform.PathProjects, &projects); err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	fmt.Fprintf(stdout, "hub: GET /api/projects -> %d projects\n", len(projects.Projects))
	var perms platform.Permissions
	if err := demo.GetJSON(ctx, client, plat.AccessManagerURL()+platform.PathPermissions, &perms); err != nil {
		return fmt.Errorf("access manager: %w", err)
	}
	fmt.Fprintf(stdout, "access manager: GET /api/permissions -> %v\n", perms.Permissions)

	// The message service, over a gRPC channel whose every RPC carries the key.
	var extra []grpc.DialOption
	if *verbose {
		extra = append(extra, grpc.WithChainUnaryInterceptor(demo.UnaryInterceptor(out, "  >", h.MessageServiceMetadata)))
	}
	conn, err := dial(plat.MessageServiceAddr(), h, extra...)
	if err != nil {
		return err
	}
	defer conn.Close()
	me, err = platform.WhoAmI(ctx, conn)
	if err != nil {
		return fmt.Errorf("message service: %w", err)
	}
	fmt.Fprintf(stdout, "message service: WhoAmI -> %s (user %s, by %s)\n", me.Subject, me.Username, me.Method)

	// A key the platform does not know is refused everywhere.
	wrong, err := handlers.NewAPIKeys(handlers.APIKeysConfig{KeyID: keyID, Key: auth.NewSecret("ak_live_not-the-right-secret"), Username: keyOwner})
	if err != nil {
		return err
	}
	ws, err := session.New(wrong, session.Config{HubURL: plat.HubURL()})
	if err != nil {
		return err
	}
	defer ws.Close()
	err = demo.GetJSON(ctx, ws.HTTPClient(), plat.HubURL()+platform.PathMe, &me)
	if err == nil {
		return errors.New("the hub accepted a wrong key")
	}
	fmt.Fprintf(stdout, "wrong key: hub refused it (%v)\n", err)
	wconn, err := dial(plat.MessageServiceAddr(), wrong)
	if err != nil {
		return err
	}
	defer wconn.Close()
	if _, err := platform.WhoAmI(ctx, wconn); status.Code(err) != codes.Unauthenticated {
		return fmt.Errorf("the message service answered %v to a wrong key, want Unauthenticated", err)
	}
	fmt.Fprintln(stdout, "wrong key: message service refused it (Unauthenticated)")

	c := plat.Counts()
	fmt.Fprintf(stdout, "platform counters: hub %+v, access manager %+v, message service %+v\n",
		c[platform.ServiceHub], c[platform.ServiceAccessManager], c[platform.ServiceMessages])
	return nil
}

// dial opens a channel to the message service whose every RPC carries the
// credentials of h. The platform listens on loopback without TLS, which
// grpcauth allows only when asked to (AllowInsecureLoopback) and only for
// loopback addresses.
func dial(addr string, h grpcauth.MetadataSource, extra ...grpc.DialOption) (*grpc.ClientConn, error) {
	opts, err := grpcauth.DialOptions(h, grpcauth.ClientConfig{
		AllowInsecureLoopback: true,
		TransportCredentials:  insecure.NewCredentials(),
	})
	if err != nil {
		return nil, err
	}
	return grpc.NewClient(addr, append(opts, extra...)...)
}
