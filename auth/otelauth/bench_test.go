package otelauth_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/auth/otelauth"
)

// BenchmarkRequestCredentials: what one request's credentials cost, in
// one run — a bearer token's prepared header (the getter and
// RequestHeaders) and a DPoP-bound token's header with a new ES256 proof
// (RequestHeaders, and RequestMetadata for an RPC) — each with telemetry
// off (no Observer) and on (an Observer on the OpenTelemetry SDK, with an
// in-memory exporter and a manual reader; and on+reads, which also counts
// the reads served from the cache, otelauth.CountCachedReads). A served
// token emits nothing; with CountCachedReads it costs one atomic add.
//
//	go test -run '^$' -bench RequestCredentials ./auth/otelauth/
func BenchmarkRequestCredentials(b *testing.B) {
	target, _ := url.Parse("https://hub.example.com/api/v1/projects?page=2")
	key, err := auth.NewDPoPKey(nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, name := range []string{"telemetry=off", "telemetry=on", "telemetry=on+reads"} {
		var obs auth.Observer
		if name != "telemetry=off" {
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(tracetest.NewInMemoryExporter()))
			mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
			b.Cleanup(func() { _ = tp.Shutdown(context.Background()); _ = mp.Shutdown(context.Background()) })
			var opts []otelauth.Option
			if name == "telemetry=on+reads" {
				opts = append(opts, otelauth.CountCachedReads())
			}
			obs = otelauth.New(tp, mp, opts...)
		}
		engine := func(b *testing.B, dpop bool) *auth.Engine {
			e, err := auth.NewEngine(auth.EngineConfig{Observer: obs, Fetch: func(context.Context, *auth.Token) (*auth.Token, error) {
				t := &auth.Token{AccessToken: auth.NewSecret("access-token-value-of-a-realistic-length-0123456789"), TokenType: "Bearer", Expiry: time.Now().Add(time.Hour)}
				if dpop {
					t.TokenType, t.DPoPKey = auth.DPoPScheme, key
				}
				return t, nil
			}})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { e.Close() })
			if _, err := e.Credentials(context.Background()); err != nil {
				b.Fatal(err)
			}
			return e
		}
		ctx := context.Background()
		b.Run("bearer/HubRequestHeaders/"+name, func(b *testing.B) {
			e := engine(b, false)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.HubRequestHeaders(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("bearer/HubRequestHeaders/parallel/"+name, func(b *testing.B) {
			e := engine(b, false)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := e.HubRequestHeaders(ctx); err != nil {
						b.Error(err) // not Fatal: this is not the benchmark's goroutine
						return
					}
				}
			})
		})
		b.Run("bearer/RequestHeaders/"+name, func(b *testing.B) {
			e := engine(b, false)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.RequestHeaders(ctx, auth.ServiceHub, http.MethodGet, target, ""); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("dpop/RequestHeaders/"+name, func(b *testing.B) {
			e := engine(b, true)
			b.ReportAllocs()
			for b.Loop() {
				h, err := e.RequestHeaders(ctx, auth.ServiceHub, http.MethodGet, target, "server-nonce")
				if err != nil || h.Get(auth.DPoPHeader) == "" {
					b.Fatal(err)
				}
			}
		})
		b.Run("dpop/RequestMetadata/"+name, func(b *testing.B) {
			e := engine(b, true)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.RequestMetadata(ctx, "https://messages.example.com/platform.Messages", "/platform.Messages/Send", ""); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
