// Command sdk is the first persona of authkit's docs: the author of a
// platform SDK. Its Connect lets the SDK's users log in however they are
// set up — API keys or client credentials in PLATFORM_* environment
// variables, a login stored by an earlier run, or a device code — and
// gives them one client for the hub, the access manager and the gRPC
// message service.
//
//	PLATFORM_ISSUER=https://sso.example.com PLATFORM_HUB=https://hub.example.com \
//	PLATFORM_ACCESS_MANAGER=https://am.example.com PLATFORM_MESSAGES=messages.example.com:443 \
//	PLATFORM_CLIENT_ID=svc PLATFORM_CLIENT_SECRET=... go run ./examples/sdk
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"google.golang.org/grpc"

	"github.com/authkit-go/authkit/authtest/platform"
	"github.com/authkit-go/authkit/grpcauth"
	"github.com/authkit-go/authkit/handlers"
	"github.com/authkit-go/authkit/session"
)

func main() {
	if err := run(context.Background(), os.Stdout, os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "sdk:", err)
		os.Exit(1)
	}
}

// Client is the SDK's client: one identity for every service.
type Client struct {
	auth     *handlers.Selected
	http     *session.Session
	messages *grpc.ClientConn
	hub, am  string
}

// Connect picks the user's credentials and opens the SDK's channels.
// getenv is os.Getenv outside tests.
func Connect(ctx context.Context, getenv func(string) string) (*Client, error) {
	env := func(k string) string { return getenv("PLATFORM_" + k) }
	h, err := handlers.Select(ctx, handlers.SelectConfig{
		EnvPrefix: "PLATFORM_", Getenv: getenv,
		OAuth: handlers.OAuthConfig{
			Endpoints: handlers.Endpoints{Issuer: env("ISSUER")},
			ClientID:  env("CLI_CLIENT_ID"), // the public client of person logins, if any
			UserAgent: "platform-sdk/1.0",
		},
		Interactive: handlers.InteractiveDevice,
	})
	if err != nil {
		return nil, err
	}
	c := &Client{auth: h, hub: env("HUB"), am: env("ACCESS_MANAGER")}
	if c.http, err = session.New(h, session.Config{HubURL: c.hub, AccessManagerURL: c.am, UserAgent: "platform-sdk/1.0"}); err != nil {
		h.Close()
		return nil, err
	}
	opts, err := grpcauth.DialOptions(h, grpcauth.ClientConfig{UserAgent: "platform-sdk/1.0",
		AllowInsecureLoopback: strings.HasPrefix(env("MESSAGES"), "127.0.0.1:")})
	if err == nil {
		c.messages, err = grpc.NewClient(env("MESSAGES"), opts...)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Close releases the channels and the handler.
func (c *Client) Close() error {
	if c.messages != nil {
		c.messages.Close()
	}
	c.http.Close()
	return c.auth.Close()
}

// Me asks the hub, the access manager and the message service who the
// caller is.
func (c *Client) Me(ctx context.Context) ([3]string, error) {
	var who [3]string
	for i, base := range []string{c.hub, c.am} {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+platform.PathMe, nil)
		if err != nil {
			return who, err
		}
		resp, err := c.http.HTTPClient().Do(req)
		if err != nil {
			return who, err
		}
		var me platform.Me
		err = json.NewDecoder(resp.Body).Decode(&me)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return who, fmt.Errorf("%s: %s %v", base, resp.Status, err)
		}
		who[i] = me.Username
	}
	me, err := platform.WhoAmI(ctx, c.messages) // the platform's generated client, in a real SDK
	who[2] = me.Username
	return who, err
}

func run(ctx context.Context, out io.Writer, getenv func(string) string) error {
	c, err := Connect(ctx, getenv)
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Fprintf(out, "credentials: %s\n", c.auth.Source)
	if err := c.auth.Authenticate(ctx); err != nil {
		return err
	}
	who, err := c.Me(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "hub: %s, access manager: %s, message service: %s\n", who[0], who[1], who[2])
	return nil
}
