package auth_test

import (
	"context"
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
			return &auth.Token{AccessToken: "example-token", Expiry: time.Now().Add(time.Hour)}, nil
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

// A Token never prints its secrets, whatever the verb.
func ExampleToken_String() {
	tok := &auth.Token{AccessToken: "s3cr3t", RefreshToken: "r3fr3sh", TokenType: "Bearer"}
	fmt.Printf("%v\n", tok)
	// Output: Token{type=Bearer access=redacted refresh=redacted id=unset expiry=none}
}
