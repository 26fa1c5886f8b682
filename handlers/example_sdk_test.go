package handlers_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/oauth2"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/authtest"
	"github.com/authkit-go/authkit/authtest/platform"
	"github.com/authkit-go/authkit/handlers"
)

// A command-line tool logs in once into a FileStore; a later run finds the
// login there; logout revokes it at the provider and deletes the file.
func ExampleDeviceCode_Logout() {
	p := authtest.NewProvider(authtest.ProviderConfig{DeviceInterval: time.Second,
		Clients: []authtest.Client{{ID: "cli"}}, Users: []authtest.User{{Username: "ada"}}})
	defer p.Close()
	p.AutoApprove("ada", 0)
	tmp, _ := os.MkdirTemp("", "authkit-example")
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "tokens") // e.g. os.UserCacheDir()/mytool: created with mode 0700
	store, err := auth.NewFileStore(auth.FileStoreConfig{Dir: dir})
	if err != nil {
		fmt.Println(err)
		return
	}
	run := func() *handlers.DeviceCode {
		h, err := handlers.NewDeviceCode(handlers.DeviceCodeConfig{
			OAuthConfig: handlers.OAuthConfig{Endpoints: handlers.Endpoints{Issuer: p.Issuer()}, ClientID: "cli", Store: store},
			Prompt:      func(context.Context, handlers.DevicePrompt) error { fmt.Println("(a code is shown)"); return nil },
		})
		if err != nil {
			panic(err)
		}
		if err := h.Authenticate(context.Background()); err != nil {
			panic(err)
		}
		return h
	}
	first := run() // prompts
	first.Close()
	second := run() // the stored login: no prompt
	defer second.Close()
	fmt.Println("second run logged in as", second.Username())
	err = second.Logout(context.Background())
	fmt.Println("logout:", err, "- revocations:", p.Revocations())
	// Output:
	// (a code is shown)
	// second run logged in as ada
	// logout: <nil> - revocations: 2
}

// Code written for golang.org/x/oauth2 takes a handler's tokens through
// auth.TokenSource: here an oauth2 HTTP client calls the hub.
func Example_tokenSource() {
	p := authtest.NewProvider(authtest.ProviderConfig{Audience: platform.DefaultAudience,
		Clients: []authtest.Client{{ID: "billing", Secret: "s3cret"}}})
	defer p.Close()
	plat, err := platform.New(platform.Config{Provider: p})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer plat.Close()
	h, err := handlers.NewClientCredentials(handlers.ClientCredentialsConfig{OAuthConfig: handlers.OAuthConfig{
		Endpoints: handlers.Endpoints{Issuer: p.Issuer()}, ClientID: "billing", ClientSecret: auth.NewSecret("s3cret")}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer h.Close()

	client := oauth2.NewClient(context.Background(), auth.TokenSource(h))
	resp, err := client.Get(plat.HubURL() + platform.PathMe)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println("hub:", resp.Status)
	// Output:
	// hub: 200 OK
}

// A custom device prompt shows the code with a countdown that stops when
// the login ends (DevicePrompt.Done), approved or not.
func ExampleDevicePrompt() {
	p := authtest.NewProvider(authtest.ProviderConfig{DeviceInterval: time.Second,
		Clients: []authtest.Client{{ID: "cli"}}, Users: []authtest.User{{Username: "ada"}}})
	defer p.Close()
	p.AutoApprove("ada", 0)
	stopped := make(chan struct{})
	h, err := handlers.NewDeviceCode(handlers.DeviceCodeConfig{
		OAuthConfig: handlers.OAuthConfig{Endpoints: handlers.Endpoints{Issuer: p.Issuer()}, ClientID: "cli"},
		Prompt: func(_ context.Context, dp handlers.DevicePrompt) error {
			fmt.Printf("enter the code at the provider; it expires in %v\n", dp.ExpiresIn.Round(time.Minute))
			go func() { // the countdown
				defer close(stopped)
				tick := time.NewTicker(time.Second)
				defer tick.Stop()
				for {
					select {
					case <-tick.C:
						_ = time.Until(dp.Expiry) // redraw "expires in ..." here
					case <-dp.Done:
						return
					}
				}
			}()
			return nil
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer h.Close()
	err = h.Authenticate(context.Background())
	<-stopped
	fmt.Println("logged in:", err == nil, "- countdown stopped")
	// Output:
	// enter the code at the provider; it expires in 10m0s
	// logged in: true - countdown stopped
}

// An application hands over JWTs that live 6 seconds; the handler asks for
// the next one a second before each expires (auth.Margin's default: 10 % of
// the lifetime, at least 1 s) and never serves an expired one.
func ExampleExternallyManagedJWT_shortLived() {
	clock := authtest.NewClock(time.Time{})
	p := authtest.NewProvider(authtest.ProviderConfig{Clock: clock})
	defer p.Close()
	calls := 0
	h, err := handlers.NewExternallyManagedJWT(handlers.ExternallyManagedJWTConfig{
		Callback: func(context.Context) (string, time.Time, error) {
			calls++ // the application's own login or token cache
			return p.IssueAccessToken("grace", "app", nil, 6*time.Second), time.Time{}, nil
		},
		Clock: clock,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer h.Close()
	ctx := context.Background()
	_ = h.Authenticate(ctx)
	fmt.Println("refreshed after:", 6*time.Second-auth.Margin{}.For(6*time.Second, 0), "- calls:", calls)
	clock.Advance(7 * time.Second) // past the first JWT's expiry
	_, err = h.HubRequestHeaders(ctx)
	fmt.Println("served a new JWT:", err == nil, "- calls:", calls)
	// Output:
	// refreshed after: 5s - calls: 1
	// served a new JWT: true - calls: 2
}
