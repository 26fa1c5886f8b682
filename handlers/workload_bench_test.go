package handlers

import (
	"context"
	"crypto"
	"net/url"
	"testing"
	"time"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/authtest"
)

// BenchmarkAssertion is the cost of one private_key_jwt assertion: made
// once per token request, never per header read.
func BenchmarkAssertion(b *testing.B) {
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		b.Run(alg, func(b *testing.B) {
			src, err := NewPrivateKeyJWT(PrivateKeyJWTConfig{Key: testKeys()[alg], Algorithm: alg})
			if err != nil {
				b.Fatal(err)
			}
			req := AssertionRequest{ClientID: "robot", Audience: "https://idp.example/token", Now: time.Now()}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := src.Assertion(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkTokenRequest is one client credentials token request to a
// loopback provider, authenticated with a secret and with private_key_jwt:
// the assertion beside the request it rides on. (The provider verifies
// the assertion too; its share is in the figure.)
func BenchmarkTokenRequest(b *testing.B) {
	for _, method := range []string{"secret", "RS256", "ES256"} {
		b.Run(method, func(b *testing.B) {
			cfg := authtest.ProviderConfig{Clients: []authtest.Client{{ID: "svc", Secret: svcSecret}}}
			oc := OAuthConfig{ClientID: "svc", ClientSecret: auth.NewSecret(svcSecret)}
			if method != "secret" {
				key := testKeys()[method]
				cfg.Clients = []authtest.Client{{ID: "svc", PublicKeys: []crypto.PublicKey{key.Public()}}}
				src, _ := NewPrivateKeyJWT(PrivateKeyJWTConfig{Key: key, Algorithm: method})
				oc.ClientSecret, oc.ClientAssertion = auth.Secret{}, src
			}
			p := authtest.NewProvider(cfg)
			defer p.Close()
			oc.Endpoints = Endpoints{TokenURL: p.TokenURL()}
			h, err := NewClientCredentials(ClientCredentialsConfig{OAuthConfig: oc})
			if err != nil {
				b.Fatal(err)
			}
			defer h.Close()
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := h.core.grant(ctx, url.Values{"grant_type": {"client_credentials"}}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWorkloadHeaderRead: a header read of a handler that
// authenticates with private_key_jwt costs what any other read costs: the
// assertion is not on this path.
func BenchmarkWorkloadHeaderRead(b *testing.B) {
	key := testKeys()["ES256"]
	p := authtest.NewProvider(authtest.ProviderConfig{Clients: []authtest.Client{{ID: "svc", PublicKeys: []crypto.PublicKey{key.Public()}}}})
	defer p.Close()
	src, _ := NewPrivateKeyJWT(PrivateKeyJWTConfig{Key: key})
	h, err := NewClientCredentials(ClientCredentialsConfig{OAuthConfig: OAuthConfig{
		Endpoints: Endpoints{TokenURL: p.TokenURL()}, ClientID: "svc", ClientAssertion: src}})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	ctx := context.Background()
	if err := h.Authenticate(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.HubRequestHeaders(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
