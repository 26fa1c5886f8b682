// Command devicecode logs a person in with the OAuth 2.0 device
// authorization grant (RFC 8628), as a command-line tool does: it shows a
// code, the person approves it in a browser on any device, and the tool
// receives a token it keeps fresh with the refresh token.
//
// With -issuer and -client-id it logs in with a real provider (found by
// OpenID Connect discovery) and, with -hub, calls that hub's URL with the
// token:
//
//	go run ./examples/devicecode -issuer https://sso.example.com/realms/demo -client-id cli
//
// Without flags it runs against an embedded provider and platform
// (authtest), where the simulated user approves the code after a moment:
//
//	go run ./examples/devicecode
//
// Tokens are masked in everything it prints.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/authtest"
	"github.com/authkit-go/authkit/authtest/platform"
	"github.com/authkit-go/authkit/examples/internal/demo"
	"github.com/authkit-go/authkit/handlers"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "devicecode:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("devicecode", flag.ContinueOnError)
	fs.SetOutput(stdout)
	issuer := fs.String("issuer", "", "the provider's issuer URL (discovery); empty runs an embedded provider")
	clientID := fs.String("client-id", "", "the OAuth client id registered for device login (required with -issuer)")
	clientSecret := fs.String("client-secret", "", "the client secret, for a confidential client (also read from $AUTHKIT_CLIENT_SECRET)")
	scopes := fs.String("scopes", "openid profile offline_access", "space-separated scopes")
	audience := fs.String("audience", "", "space-separated \"audience\" parameters, for providers that want them (Auth0)")
	hub := fs.String("hub", "", "a hub base URL to call GET /api/me on with the token (optional)")
	timeout := fs.Duration("timeout", 5*time.Minute, "how long to wait for the approval")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *clientSecret == "" {
		*clientSecret = os.Getenv("AUTHKIT_CLIENT_SECRET")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	out := demo.NewOut(stdout)

	var plat *platform.Platform
	if *issuer == "" {
		if *clientID != "" || *hub != "" {
			return fmt.Errorf("-client-id and -hub need -issuer")
		}
		prov, p, err := embedded(out)
		if err != nil {
			return err
		}
		defer prov.Close()
		defer p.Close()
		plat = p
		*issuer, *clientID, *hub = prov.Issuer(), "devicecode-example", p.HubURL()
		out.Printf("No -issuer given: using an embedded provider at %s and platform hub at %s.\n\n", *issuer, *hub)
	} else if *clientID == "" {
		return fmt.Errorf("-issuer needs -client-id")
	}

	h, err := handlers.NewDeviceCode(handlers.DeviceCodeConfig{
		OAuthConfig: handlers.OAuthConfig{
			Endpoints:    handlers.Endpoints{Issuer: *issuer}, // the rest is discovered
			ClientID:     *clientID,
			ClientSecret: auth.NewSecret(*clientSecret),
			Scopes:       strings.Fields(*scopes),
			Audiences:    strings.Fields(*audience),
		},
		// The default prompt, written where this program writes; it opens
		// no browser (pass NoBrowser: false and no Prompt to get one).
		Prompt: handlers.DefaultPrompt(out, nil),
	})
	if err != nil {
		return err
	}
	defer h.Close()
	if err := h.Authenticate(ctx); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	out.Printf("\n")
	return demo.ReportLogin(ctx, out, h, *hub, plat)
}

// embedded starts a provider whose simulated user, ada, approves each
// device code a moment after it is shown, and a platform that trusts it.
func embedded(out *demo.Out) (*authtest.Provider, *platform.Platform, error) {
	prov := authtest.NewProvider(authtest.ProviderConfig{
		Audience:       platform.DefaultAudience,
		DeviceInterval: time.Second,
		Clients:        []authtest.Client{{ID: "devicecode-example"}},
		Users:          []authtest.User{{Username: "ada", Password: "unused"}},
	})
	prov.OnDeviceAuthorization(func(code string) {
		time.AfterFunc(1500*time.Millisecond, func() {
			if prov.ApproveDevice(code, "ada") == nil {
				out.Printf("[embedded provider] ada approved code %s in her browser (simulated).\n", code)
			}
		})
	})
	plat, err := platform.New(platform.Config{Provider: prov})
	if err != nil {
		prov.Close()
		return nil, nil, err
	}
	return prov, plat, nil
}
