package auth_test

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/authkit-go/authkit/auth"
)

// An engine turns any way of getting a token into cached, proactively
// refreshed credentials for every service.
func ExampleNewEngine() {
	fetches := 0
	engine, err := auth.NewEngine(auth.EngineConfig{
		Fetch: func(ctx context.Context, current *auth.Token) (*auth.Token, error) {
			fetches++ // a grant would call its token endpoint here
			return &auth.Token{AccessToken: auth.NewSecret("example-token"), Expiry: time.Now().Add(time.Hour)}, nil
		},
		// The message service wants the bare token under "token".
		Wire: auth.Wire{MessageService: auth.Field{Name: "token"}},
	})
	if err != nil {
		panic(err)
	}
	defer engine.Close()

	ctx := context.Background()
	hub, _ := engine.HubRequestHeaders(ctx)
	md, _ := engine.MessageServiceMetadata(ctx)
	fmt.Println("hub:", hub.Get("Authorization"))
	fmt.Println("message service:", md)
	fmt.Println("fetches:", fetches)
	// Output:
	// hub: Bearer example-token
	// message service: map[token:example-token]
	// fetches: 1
}

// Handler makes an AuthenticationHandler of an engine whose grant is one's
// own, for the session, grpcauth and anything else that takes a handler.
func ExampleHandler() {
	engine, err := auth.NewEngine(auth.EngineConfig{
		Fetch: func(ctx context.Context, current *auth.Token) (*auth.Token, error) {
			return &auth.Token{AccessToken: auth.NewSecret("own-grant-token"), Expiry: time.Now().Add(time.Hour)}, nil
		},
	})
	if err != nil {
		panic(err)
	}
	h := auth.Handler(engine, "svc-reporting") // an auth.AuthenticationHandler
	defer h.Close()

	ctx := context.Background()
	if err := h.Authenticate(ctx); err != nil {
		panic(err)
	}
	am, _ := h.AccessManagerRequestHeaders(ctx)
	fmt.Println(h.Username(), h.Authenticated(), am.Get("Authorization"))
	// Output:
	// svc-reporting true Bearer own-grant-token
}

// A Secret never prints itself, whatever the verb and wherever it sits; a
// Token's credentials are Secrets. Reveal is the one way out.
func ExampleSecret() {
	tok := auth.Token{AccessToken: auth.NewSecret("s3cr3t"), TokenType: "Bearer"}
	fmt.Printf("%v\n", tok.AccessToken)
	fmt.Printf("%+v\n", tok)
	b, _ := json.Marshal(tok)
	fmt.Println(string(b))
	fmt.Println(tok.AccessToken.Reveal())
	// Output:
	// [redacted]
	// {AccessToken:[redacted] TokenType:Bearer RefreshToken: IDToken: Scope: Expiry:0001-01-01 00:00:00 +0000 UTC RefreshExpiry:0001-01-01 00:00:00 +0000 UTC Extra:map[]}
	// {"access_token":"[redacted]","token_type":"Bearer"}
	// s3cr3t
}

// The default Margin refreshes a token when 10 % of its lifetime is left,
// at least 1 s and at most 5 minutes before, never past half of it; a
// platform that issues very short tokens can widen it.
func ExampleMargin() {
	for _, life := range []time.Duration{2 * time.Second, 6 * time.Second, time.Minute, 24 * time.Hour} {
		fmt.Printf("%v token: refreshed %v before expiry\n", life, auth.Margin{}.For(life, 0))
	}
	// Tokens of a few seconds from a provider that takes 800 ms to answer:
	// a larger share, and a floor above the fetch time.
	short := auth.Margin{Fraction: 0.3, Min: 2 * time.Second}
	fmt.Println("6s token, custom margin:", short.For(6*time.Second, 800*time.Millisecond))
	// Output:
	// 2s token: refreshed 1s before expiry
	// 6s token: refreshed 1s before expiry
	// 1m0s token: refreshed 6s before expiry
	// 24h0m0s token: refreshed 5m0s before expiry
	// 6s token, custom margin: 2s
}
