package grpcauth_test

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/credentials"

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

// benchURI is the audience gRPC passes; made once, as the variadic slice
// would otherwise be allocated by each call site.
var benchURI = []string{"https://msg.example.com/grpc.health.v1.Health"}

// perRPC returns authkit's per-RPC credentials over a valid one-hour token.
// The comparison with grpc's credentials/oauth.TokenSource, in the same run,
// is in internal/compare, a module of its own: grpc's oauth package pulls
// cloud.google.com/go/compute/metadata, which authkit's users should not get
// in their module graph for a benchmark.
func perRPC(tb testing.TB) map[string]credentials.PerRPCCredentials {
	tb.Helper()
	exp := time.Now().Add(time.Hour)
	eng, err := auth.NewEngine(auth.EngineConfig{
		Fetch:   func(context.Context, *auth.Token) (*auth.Token, error) { panic("no fetch while the token is valid") },
		Initial: &auth.Token{AccessToken: auth.NewSecret("access-token"), TokenType: "Bearer", Expiry: exp},
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { eng.Close() })
	ours, err := grpcauth.NewCredentials(eng, grpcauth.ClientConfig{})
	if err != nil {
		tb.Fatal(err)
	}
	return map[string]credentials.PerRPCCredentials{"authkit": ours}
}

// BenchmarkGetRequestMetadata measures grpcauth.Credentials holding a
// valid token, sequentially and from all CPUs.
func BenchmarkGetRequestMetadata(b *testing.B) {
	ctx := rpcContext()
	creds := perRPC(b)
	for _, name := range slices.Sorted(maps.Keys(creds)) {
		c := creds[name]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.GetRequestMetadata(ctx, benchURI...); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.GetRequestMetadata(ctx, benchURI...); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func TestGetRequestMetadataAllocs(t *testing.T) {
	ctx := rpcContext()
	c := perRPC(t)["authkit"]
	md, err := c.GetRequestMetadata(ctx, benchURI...)
	if err != nil || md["authorization"] != "Bearer access-token" {
		t.Fatalf("got %v, %v", md, err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := c.GetRequestMetadata(ctx, benchURI...); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per call, want 0", allocs)
	}
}
