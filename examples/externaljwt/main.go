// Command externaljwt shows an application that owns its login and hands
// authkit its JWT through a callback (handlers.ExternallyManagedJWT).
//
// The embedding application here is simulated: it keeps its user logged in
// with an identity provider (an embedded authtest provider) and hands out
// short-lived JWTs (3 seconds, so that the example shows a renewal). authkit
// asks the callback for a token when it needs one and again shortly before
// the token expires; the platform (embedded too) checks every token against
// the provider's keys. Tokens are masked in everything it prints.
//
//	go run ./examples/externaljwt [-v]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/authkit-go/authkit/authtest"
	"github.com/authkit-go/authkit/authtest/platform"
	"github.com/authkit-go/authkit/examples/internal/demo"
	"github.com/authkit-go/authkit/grpcauth"
	"github.com/authkit-go/authkit/handlers"
	"github.com/authkit-go/authkit/session"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "externaljwt:", err)
		os.Exit(1)
	}
}

// tokenLifetime is how long the application's JWTs live: short, so that
// the example shows a renewal.
const tokenLifetime = 3 * time.Second

// application plays the program that embeds the SDK: it has logged its user
// in by its own means and can hand out a current JWT at any time.
type application struct {
	idp     *authtest.Provider
	user    string
	out     *demo.Out
	handed  atomic.Int32
	lastJWT atomic.Pointer[string]
}

// currentJWT is the callback authkit calls: it returns the application's
// current token. Returning a zero expiry lets authkit read the "exp" claim.
func (a *application) currentJWT(ctx context.Context) (string, time.Time, error) {
	if err := ctx.Err(); err != nil {
		return "", time.Time{}, err
	}
	tok := a.idp.IssueAccessToken(a.user, "embedding-app", []string{"projects:read"}, tokenLifetime)
	n := a.handed.Add(1)
	a.lastJWT.Store(&tok)
	a.out.Printf("[app] callback #%d: handing authkit a fresh JWT for %s (%s, valid %s)\n",
		n, a.user, demo.Value("Bearer "+tok), tokenLifetime)
	return tok, time.Time{}, nil
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("externaljwt", flag.ContinueOnError)
	fs.SetOutput(stdout)
	verbose := fs.Bool("v", false, "print every request with its (masked) credentials")
	if err := fs.Parse(args); err != nil {
		return err
	}
	out := demo.NewOut(stdout)

	// The identity provider the application logs in with, and the platform
	// that trusts it.
	idp := authtest.NewProvider(authtest.ProviderConfig{Audience: platform.DefaultAudience})
	defer idp.Close()
	plat, err := platform.New(platform.Config{Provider: idp})
	if err != nil {
		return fmt.Errorf("starting the platform: %w", err)
	}
	defer plat.Close()
	out.Printf("identity provider %s; platform: hub %s, access manager %s, message service %s\n",
		idp.Issuer(), plat.HubURL(), plat.AccessManagerURL(), plat.MessageServiceAddr())

	app := &application{idp: idp, user: "grace", out: out}
	h, err := handlers.NewExternallyManagedJWT(handlers.ExternallyManagedJWTConfig{
		Callback:      app.currentJWT,
		UsernameClaim: "preferred_username",
		// The default margin fits short tokens too: a token that lives a
		// few seconds is asked for again a second before it expires.
	})
	if err != nil {
		return err
	}
	defer h.Close()

	cfg := session.Config{HubURL: plat.HubURL(), AccessManagerURL: plat.AccessManagerURL()}
	if *verbose {
		cfg.Transport = &demo.Transport{Out: out, Tag: "  >"}
	}
	s, err := session.New(h, cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	opts, err := grpcauth.DialOptions(h, grpcauth.ClientConfig{
		AllowInsecureLoopback: true, // the platform listens on loopback without TLS
		TransportCredentials:  insecure.NewCredentials(),
	})
	if err != nil {
		return err
	}
	if *verbose {
		opts = append(opts, grpc.WithChainUnaryInterceptor(demo.UnaryInterceptor(out, "  >", h.MessageServiceMetadata)))
	}
	conn, err := grpc.NewClient(plat.MessageServiceAddr(), opts...)
	if err != nil {
		return err
	}
	defer conn.Close()

	if err := callAll(ctx, out, "first round", s.HTTPClient(), conn, plat); err != nil {
		return err
	}
	first := *app.lastJWT.Load()
	out.Printf("authkit user: %s\n", h.Username())

	// Let the first token run out. authkit asks the application for the
	// next one in the background, a second before the first expires.
	deadline := time.Now().Add(tokenLifetime + 500*time.Millisecond)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Until(deadline)):
	}
	if err := refused(ctx, plat.HubURL()+platform.PathMe, first); err != nil {
		return err
	}
	out.Printf("the first JWT has expired: the hub refuses it (401)\n")

	if err := callAll(ctx, out, "second round", s.HTTPClient(), conn, plat); err != nil {
		return err
	}
	st := h.Stats()
	out.Printf("callback calls: %d; engine: %d fetches, %d early refreshes, %d failures; session re-authentications: %d\n",
		app.handed.Load(), st.Fetches, st.Refreshes, st.Failures, s.Stats().Reauthentications)
	if st.Refreshes < 1 {
		return errors.New("the token was never renewed early")
	}
	return nil
}

// callAll calls the hub, the access manager and the message service.
func callAll(ctx context.Context, out *demo.Out, round string, client *http.Client, conn *grpc.ClientConn, plat *platform.Platform) error {
	var me platform.Me
	if err := demo.GetJSON(ctx, client, plat.HubURL()+platform.PathMe, &me); err != nil {
		return fmt.Errorf("%s: hub: %w", round, err)
	}
	var perms platform.Permissions
	if err := demo.GetJSON(ctx, client, plat.AccessManagerURL()+platform.PathPermissions, &perms); err != nil {
		return fmt.Errorf("%s: access manager: %w", round, err)
	}
	msg, err := platform.WhoAmI(ctx, conn)
	if err != nil {
		return fmt.Errorf("%s: message service: %w", round, err)
	}
	out.Printf("%s: hub says %s (%s); access manager grants %v; message service says %s\n",
		round, me.Username, me.Method, perms.Permissions, msg.Username)
	return nil
}

// refused checks that the hub refuses jwt, sent without authkit.
func refused(ctx context.Context, url, jwt string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+jwt)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		return fmt.Errorf("the hub answered %s to an expired JWT, want 401", resp.Status)
	}
	return nil
}
