package session_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/authtest"
	"github.com/authkit-go/authkit/authtest/platform"
	"github.com/authkit-go/authkit/handlers"
	"github.com/authkit-go/authkit/session"
)

// One session serves the hub and the access manager of a platform (here
// authtest's, trusting an embedded provider), each request getting the
// credentials of its service. When a service rejects the token (a 401),
// the session gets a new one and replays the request once.
func ExampleNew() {
	prov := authtest.NewProvider(authtest.ProviderConfig{
		Audience: platform.DefaultAudience,
		Clients:  []authtest.Client{{ID: "reporting", Secret: "s3cret"}},
	})
	defer prov.Close()
	plat, err := platform.New(platform.Config{Provider: prov})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer plat.Close()

	h, err := handlers.NewClientCredentials(handlers.ClientCredentialsConfig{OAuthConfig: handlers.OAuthConfig{
		Endpoints: handlers.Endpoints{TokenURL: prov.TokenURL()}, ClientID: "reporting", ClientSecret: auth.NewSecret("s3cret"),
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer h.Close()
	s, err := session.New(h, session.Config{HubURL: plat.HubURL(), AccessManagerURL: plat.AccessManagerURL()})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	get := func(url string) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		resp, err := s.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		defer resp.Body.Close()
		var me platform.Me
		json.NewDecoder(resp.Body).Decode(&me)
		fmt.Println(resp.StatusCode, me.Service, me.Subject)
	}
	get(plat.HubURL() + platform.PathMe)
	get(plat.AccessManagerURL() + platform.PathMe)

	plat.RejectNext(platform.ServiceHub, 1) // e.g. the token was revoked
	get(plat.HubURL() + platform.PathMe)
	fmt.Println("re-authentications:", s.Stats().Reauthentications, "token fetches:", h.Stats().Fetches)
	// Output:
	// 200 hub service-account-reporting
	// 200 access manager service-account-reporting
	// 200 hub service-account-reporting
	// re-authentications: 1 token fetches: 2
}

// A handler with DPoP binds its tokens to a key it holds: the session sends
// each request with a new proof, and a service that accepts DPoP-bound
// tokens only (here authtest's platform with RequireDPoP) lets it in. The
// provider and the services ask for their nonces first; the handler and
// the session answer by retrying once.
func Example_dPoP() {
	prov := authtest.NewProvider(authtest.ProviderConfig{
		Audience:  platform.DefaultAudience,
		Clients:   []authtest.Client{{ID: "reporting", Secret: "s3cret"}},
		DPoPNonce: true,
	})
	defer prov.Close()
	plat, err := platform.New(platform.Config{Provider: prov, RequireDPoP: true, DPoPNonce: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer plat.Close()

	h, err := handlers.NewClientCredentials(handlers.ClientCredentialsConfig{OAuthConfig: handlers.OAuthConfig{
		Endpoints: handlers.Endpoints{TokenURL: prov.TokenURL()}, ClientID: "reporting", ClientSecret: auth.NewSecret("s3cret"),
		DPoP: true,
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer h.Close()
	s, err := session.New(h, session.Config{HubURL: plat.HubURL()})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	for range 2 {
		req, _ := http.NewRequest(http.MethodGet, plat.HubURL()+platform.PathMe, nil)
		resp, err := s.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		resp.Body.Close()
		fmt.Println(resp.StatusCode)
	}
	tok, _ := h.Token(context.Background())
	fmt.Println("token type:", tok.TokenType)
	fmt.Println("nonce challenges: provider", prov.DPoPNonceChallenges(), "hub", plat.DPoPNonceChallenges())
	// Output:
	// 200
	// 200
	// token type: DPoP
	// nonce challenges: provider 1 hub 1
}
