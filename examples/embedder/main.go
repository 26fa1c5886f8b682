// Command embedder is the third persona of authkit's docs: an application
// that owns its login and embeds the platform SDK. It hands the SDK its
// JWTs, which live 6 seconds, through a callback, and calls the hub for a
// while: every call carries a valid JWT, renewed before it expires.
//
// The application's login is simulated by an embedded identity provider;
// a real application returns the JWT its own login holds.
//
//	go run ./examples/embedder [-lifetime 6s] [-for 15s]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/authkit-go/authkit/authtest"
	"github.com/authkit-go/authkit/authtest/platform"
	"github.com/authkit-go/authkit/handlers"
	"github.com/authkit-go/authkit/session"
)

func main() {
	lifetime := flag.Duration("lifetime", 6*time.Second, "how long each of the application's JWTs lives")
	dur := flag.Duration("for", 15*time.Second, "how long to keep calling the hub")
	flag.Parse()
	if err := run(context.Background(), os.Stdout, *lifetime, *dur); err != nil {
		fmt.Fprintln(os.Stderr, "embedder:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer, lifetime, dur time.Duration) error {
	// The application's own world: its identity provider and the platform.
	idp := authtest.NewProvider(authtest.ProviderConfig{Audience: platform.DefaultAudience})
	defer idp.Close()
	plat, err := platform.New(platform.Config{Provider: idp})
	if err != nil {
		return err
	}
	defer plat.Close()
	var logins atomic.Int64
	appLogin := func(ctx context.Context) (string, time.Time, error) {
		logins.Add(1)
		return idp.IssueAccessToken("grace", "embedding-app", nil, lifetime), time.Time{}, ctx.Err()
	}

	// What the application writes to embed the SDK.
	h, err := handlers.NewExternallyManagedJWT(handlers.ExternallyManagedJWTConfig{
		Callback: appLogin, UsernameClaim: "preferred_username"})
	if err != nil {
		return err
	}
	defer h.Close()
	s, err := session.New(h, session.Config{HubURL: plat.HubURL()})
	if err != nil {
		return err
	}
	defer s.Close()

	calls := 0
	for end := time.Now().Add(dur); time.Now().Before(end); calls++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, plat.HubURL()+platform.PathMe, nil)
		if err != nil {
			return err
		}
		resp, err := s.HTTPClient().Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("hub: %s after %d calls", resp.Status, calls)
		}
		time.Sleep(100 * time.Millisecond)
	}
	c := plat.Counts()[platform.ServiceHub]
	fmt.Fprintf(out, "%d calls as %s over %v with %v JWTs: %d refused; the application was asked for %d JWTs\n",
		calls, h.Username(), dur, lifetime, c.Rejected, logins.Load())
	return nil
}
