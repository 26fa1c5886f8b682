package handlers_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/authkit-go/authkit/authtest"
	"github.com/authkit-go/authkit/handlers"
)

// An SDK picks its handler from what its user configured: here, client
// credentials in the environment under the SDK's own prefix. With nothing
// configured, the error says what was tried.
func ExampleSelect() {
	p := authtest.NewProvider(authtest.ProviderConfig{Clients: []authtest.Client{{ID: "billing", Secret: "s3cret"}}})
	defer p.Close()
	env := map[string]string{"MYSDK_CLIENT_ID": "billing", "MYSDK_CLIENT_SECRET": "s3cret"}
	cfg := handlers.SelectConfig{
		EnvPrefix: "MYSDK_",
		Getenv:    func(k string) string { return env[k] }, // nil: os.Getenv
		OAuth:     handlers.OAuthConfig{Endpoints: handlers.Endpoints{Issuer: p.Issuer()}},
	}
	h, err := handlers.Select(context.Background(), cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer h.Close()
	fmt.Println("source:", h.Source, "- authenticated:", h.Authenticate(context.Background()) == nil)

	env = nil
	_, err = handlers.Select(context.Background(), cfg)
	fmt.Println(errors.Is(err, handlers.ErrNoCredentials))
	fmt.Println(err)
	// Output:
	// source: client credentials (environment) - authenticated: true
	// true
	// handlers: no credentials configured; tried, in order:
	//   externally managed JWT (in code): no callback given
	//   API keys (in code): none given
	//   API keys (environment): MYSDK_API_KEY_ID and MYSDK_API_KEY are not set
	//   client credentials (environment): MYSDK_CLIENT_ID and MYSDK_CLIENT_SECRET are not set
	//   federated token file (environment): MYSDK_FEDERATED_TOKEN_FILE is not set
	//   GitHub Actions OIDC token (environment): ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN are not set
	//   federated token command (environment): MYSDK_FEDERATED_TOKEN_COMMAND is not set
	//   stored login: no OAuth client configured (OAuth.ClientID)
	//   interactive login: no OAuth client configured (OAuth.ClientID)
}
