package grpcauth_test

import (
	"time"

	"golang.org/x/oauth2"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/oauth"
)

// oauthTokenSource is grpc's per-RPC credentials over a golang.org/x/oauth2
// reuse source holding a token valid until exp.
func oauthTokenSource(exp time.Time) (string, credentials.PerRPCCredentials) {
	tok := &oauth2.Token{AccessToken: "access-token", TokenType: "Bearer", Expiry: exp}
	return "grpc-oauth", oauth.TokenSource{TokenSource: oauth2.ReuseTokenSource(nil, oauth2.StaticTokenSource(tok))}
}
