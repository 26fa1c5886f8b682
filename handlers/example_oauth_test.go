package handlers_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/authtest"
	"github.com/authkit-go/authkit/handlers"
)

// A service logs in as itself with the client credentials grant; the
// handler runs the grant again before the token expires.
func ExampleNewClientCredentials() {
	p := authtest.NewProvider(authtest.ProviderConfig{
		Clients: []authtest.Client{{ID: "billing", Secret: "s3cret"}},
	})
	defer p.Close()

	h, err := handlers.NewClientCredentials(handlers.ClientCredentialsConfig{OAuthConfig: handlers.OAuthConfig{
		Endpoints:    handlers.Endpoints{TokenURL: p.TokenURL()},
		ClientID:     "billing",
		ClientSecret: auth.NewSecret("s3cret"),
		Scopes:       []string{"invoices:read"},
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer h.Close()

	hdr, err := h.HubRequestHeaders(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(strings.HasPrefix(hdr.Get("Authorization"), "Bearer ey"))
	fmt.Println(p.LastRequest(authtest.EndpointToken).AuthMethod, p.LastRequest(authtest.EndpointToken).Form.Get("scope"))
	// Output:
	// true
	// client_secret_basic invoices:read
}

// A user logs in with a password and a TOTP second factor; the code is
// computed from the user's secret at each login.
func ExampleNewPassword() {
	p := authtest.NewProvider(authtest.ProviderConfig{
		Clients: []authtest.Client{{ID: "cli"}},
		Users:   []authtest.User{{Username: "linus", Password: "pw", TOTPSecret: "JBSWY3DPEHPK3PXP"}},
	})
	defer p.Close()

	h, err := handlers.NewPassword(handlers.PasswordConfig{
		OAuthConfig: handlers.OAuthConfig{Endpoints: handlers.Endpoints{TokenURL: p.TokenURL()}, ClientID: "cli"},
		Username:    "linus",
		Password:    auth.NewSecret("pw"),
		TOTPSecret:  auth.NewSecret("JBSWY3DPEHPK3PXP"),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer h.Close()

	if err := h.Authenticate(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	sent := p.LastRequest(authtest.EndpointToken).Form
	fmt.Println(h.Username(), h.Authenticated(), sent.Get("grant_type"), len(sent.Get("totp")))
	// Output: linus true password 6
}

// A command-line tool logs a person in with the device authorization
// grant. The prompt shows where to go and which code to enter; here the
// embedded provider approves the code for the user.
func ExampleNewDeviceCode() {
	p := authtest.NewProvider(authtest.ProviderConfig{
		DeviceInterval: time.Second,
		Clients:        []authtest.Client{{ID: "cli"}},
		Users:          []authtest.User{{Username: "ada"}},
	})
	defer p.Close()
	p.AutoApprove("ada", 0)

	h, err := handlers.NewDeviceCode(handlers.DeviceCodeConfig{
		OAuthConfig: handlers.OAuthConfig{Endpoints: handlers.Endpoints{Issuer: p.Issuer()}, ClientID: "cli"},
		Prompt: func(_ context.Context, dp handlers.DevicePrompt) error {
			fmt.Println("open", strings.TrimPrefix(dp.VerificationURI, p.URL()), "and enter", len(dp.UserCode), "characters")
			return nil
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer h.Close()

	if err := h.Authenticate(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	tok, err := h.Token(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("logged in as", h.Username(), "with a refresh token:", tok.RefreshToken.Reveal() != "")
	// Output:
	// open /device and enter 9 characters
	// logged in as ada with a refresh token: true
}

// A program resumes a session from a refresh token obtained elsewhere; the
// provider rotates it at each use and the handler keeps the new one.
func ExampleNewRefreshToken() {
	clock := authtest.NewClock(time.Time{})
	p := authtest.NewProvider(authtest.ProviderConfig{Clock: clock, Clients: []authtest.Client{{ID: "cli"}}})
	defer p.Close()
	rt := p.IssueRefreshToken("margaret", "cli", []string{"openid"})

	h, err := handlers.NewRefreshToken(handlers.RefreshTokenConfig{
		OAuthConfig:  handlers.OAuthConfig{Endpoints: handlers.Endpoints{Issuer: p.Issuer()}, ClientID: "cli", Clock: clock},
		RefreshToken: auth.NewSecret(rt),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer h.Close()

	if err := h.Authenticate(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	tok, err := h.Token(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(h.Username(), "rotated:", tok.RefreshToken.Reveal() != rt)
	// Output: margaret rotated: true
}
