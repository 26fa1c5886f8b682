// Package compare measures authkit beside the libraries it replaces, in the
// same run, where those libraries bring dependencies that authkit's own
// module must not carry: grpc's credentials/oauth pulls
// cloud.google.com/go/compute/metadata. It is a module of its own, so that
// none of this reaches authkit's users; CI runs it.
package compare

import (
	"context"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/oauth"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/grpcauth"
)

// rpcContext is the context gRPC hands to GetRequestMetadata on a TLS
// channel.
func rpcContext() context.Context {
	return credentials.NewContextWithRequestInfo(context.Background(), credentials.RequestInfo{
		Method:   "/grpc.health.v1.Health/Check",
		AuthInfo: credentials.TLSInfo{CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}},
	})
}

var benchURI = []string{"https://msg.example.com/grpc.health.v1.Health"}

// BenchmarkGetRequestMetadata compares authkit's per-RPC credentials with
// grpc's credentials/oauth.TokenSource over a golang.org/x/oauth2 reuse
// source, each holding a valid one-hour token.
func BenchmarkGetRequestMetadata(b *testing.B) {
	exp := time.Now().Add(time.Hour)
	eng, err := auth.NewEngine(auth.EngineConfig{
		Fetch:   func(context.Context, *auth.Token) (*auth.Token, error) { panic("no fetch while the token is valid") },
		Initial: &auth.Token{AccessToken: auth.NewSecret("access-token"), TokenType: "Bearer", Expiry: exp},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	ours, err := grpcauth.NewCredentials(eng, grpcauth.ClientConfig{})
	if err != nil {
		b.Fatal(err)
	}
	tok := &oauth2.Token{AccessToken: "access-token", TokenType: "Bearer", Expiry: exp}
	theirs := oauth.TokenSource{TokenSource: oauth2.ReuseTokenSource(nil, oauth2.StaticTokenSource(tok))}
	ctx := rpcContext()
	for _, c := range []struct {
		name  string
		creds credentials.PerRPCCredentials
	}{{"authkit", ours}, {"grpc-oauth", theirs}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.creds.GetRequestMetadata(ctx, benchURI...); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.creds.GetRequestMetadata(ctx, benchURI...); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
