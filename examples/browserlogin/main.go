// Command browserlogin logs a person in in their web browser with the
// OAuth 2.0 authorization code grant and PKCE, as a desktop or
// command-line tool does (RFC 8252): it opens the browser at the
// provider's login page, receives the code on a loopback web server that
// lives only for the login, shows a landing page, and keeps the token
// fresh with the refresh token.
//
// With -issuer and -client-id it logs in with a real provider (found by
// OpenID Connect discovery), whose client must accept the redirect URI
// http://127.0.0.1:<any port>/callback, and with -hub calls that hub's URL
// with the token:
//
//	go run ./examples/browserlogin -issuer https://sso.example.com/realms/demo -client-id desktop
//
// With -welcome, the landing page sends the browser on to that page,
// naming the user (the "two-stage" landing page). With -device-fallback, a
// machine without a display logs in with a device code instead.
//
// Without -issuer it runs against an embedded provider and platform
// (authtest), where a simulated browser fills the login form as ada:
//
//	go run ./examples/browserlogin
//
// Tokens are masked in everything it prints.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/authtest"
	"github.com/authkit-go/authkit/authtest/platform"
	"github.com/authkit-go/authkit/examples/internal/demo"
	"github.com/authkit-go/authkit/handlers"
)

func main() {
	// nil: the platform's browser opener.
	if err := run(context.Background(), os.Args[1:], os.Stdout, nil); err != nil {
		fmt.Fprintln(os.Stderr, "browserlogin:", err)
		os.Exit(1)
	}
}

// run is the program; open opens the browser (nil: the platform's opener,
// or the simulated browser of the embedded provider).
func run(ctx context.Context, args []string, stdout io.Writer, open func(context.Context, string) error) error {
	fs := flag.NewFlagSet("browserlogin", flag.ContinueOnError)
	fs.SetOutput(stdout)
	issuer := fs.String("issuer", "", "the provider's issuer URL (discovery); empty runs an embedded provider")
	clientID := fs.String("client-id", "", "the OAuth client id registered for browser login (required with -issuer)")
	clientSecret := fs.String("client-secret", "", "the client secret, for a provider that gives desktop clients one (also read from $AUTHKIT_CLIENT_SECRET)")
	scopes := fs.String("scopes", "openid profile offline_access", "space-separated scopes")
	port := fs.Int("port", 0, "the loopback port of the redirect URI; 0 lets the system pick one")
	welcome := fs.String("welcome", "", "a page the landing page redirects the browser to after the login, with ?user=<name>")
	fallback := fs.Bool("device-fallback", false, "log in with a device code when no browser can be opened")
	hub := fs.String("hub", "", "a hub base URL to call GET /api/me on with the token (optional)")
	timeout := fs.Duration("timeout", 5*time.Minute, "how long to wait for the login")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *clientSecret == "" {
		*clientSecret = os.Getenv("AUTHKIT_CLIENT_SECRET")
	}
	var landing func(http.ResponseWriter, *http.Request, handlers.LoginOutcome)
	if *welcome != "" {
		u, err := url.Parse(*welcome)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("-welcome must be an http(s) URL")
		}
		landing = func(w http.ResponseWriter, r *http.Request, o handlers.LoginOutcome) {
			if o.Err != nil { // the error page stays authkit's own
				handlers.DefaultLanding(w, r, o)
				return
			}
			q := u.Query()
			q.Set("user", o.Username)
			next := *u
			next.RawQuery = q.Encode()
			http.Redirect(w, r, next.String(), http.StatusFound)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	out := demo.NewOut(stdout)

	var plat *platform.Platform
	if *issuer == "" {
		if *clientID != "" || *hub != "" {
			return fmt.Errorf("-client-id and -hub need -issuer")
		}
		prov, p, err := embedded()
		if err != nil {
			return err
		}
		defer prov.Close()
		defer p.Close()
		plat = p
		*issuer, *clientID, *hub = prov.Issuer(), "browserlogin-example", p.HubURL()
		out.Printf("No -issuer given: using an embedded provider at %s and platform hub at %s.\n\n", *issuer, *hub)
		if open == nil {
			var closeBrowser func()
			open, closeBrowser = simulatedBrowser(prov, out)
			defer closeBrowser() // before the provider and the output go
		}
	} else if *clientID == "" {
		return fmt.Errorf("-issuer needs -client-id")
	}

	cfg := handlers.BrowserLoginConfig{
		OAuthConfig: handlers.OAuthConfig{
			Endpoints:    handlers.Endpoints{Issuer: *issuer}, // the rest is discovered
			ClientID:     *clientID,
			ClientSecret: auth.NewSecret(*clientSecret),
			Scopes:       strings.Fields(*scopes),
		},
		OpenBrowser:    open,
		Output:         out, // where the URL is printed for opening by hand
		Landing:        landing,
		DeviceFallback: *fallback,
	}
	if *port != 0 {
		cfg.RedirectPorts = []int{*port}
	}
	h, err := handlers.NewBrowserLogin(cfg)
	if err != nil {
		return err
	}
	defer h.Close()
	if err := h.Authenticate(ctx); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	return demo.ReportLogin(ctx, out, h, *hub, plat)
}

// embedded starts a provider that knows ada and a platform that trusts it.
func embedded() (*authtest.Provider, *platform.Platform, error) {
	prov := authtest.NewProvider(authtest.ProviderConfig{
		Audience: platform.DefaultAudience,
		// The default redirect URIs: http://127.0.0.1/callback on any port.
		Clients: []authtest.Client{{ID: "browserlogin-example"}},
		Users:   []authtest.User{{Username: "ada", Password: "analytical-engine"}},
	})
	plat, err := platform.New(platform.Config{Provider: prov})
	if err != nil {
		prov.Close()
		return nil, nil, err
	}
	return prov, plat, nil
}

// simulatedBrowser is ada at her browser: it returns at once, as a real
// opener does, then fills the embedded provider's login form and follows
// the redirect back to the program. closeBrowser waits for it to finish.
func simulatedBrowser(prov *authtest.Provider, out *demo.Out) (open func(context.Context, string) error, closeBrowser func()) {
	b := prov.NewBrowser("ada", "analytical-engine")
	var wg sync.WaitGroup
	return func(ctx context.Context, authURL string) error {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The browser outlives the login: it still shows the landing page.
			if err := b.Open(context.WithoutCancel(ctx), authURL); err != nil {
				out.Printf("[browser] %v\n", err)
				return
			}
			out.Printf("[browser] ada logged in (simulated); the browser shows %q\n", b.LastPage().Text())
		}()
		return nil
	}, wg.Wait
}
