package auth_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/authkit-go/authkit/auth"
)

// The cached getters against golang.org/x/oauth2's ReuseTokenSource, in one
// run: go test -run '^$' -bench 'Cached|ReuseTokenSource' ./auth/

func benchEngine(b *testing.B) *auth.Engine {
	b.Helper()
	e, err := auth.NewEngine(auth.EngineConfig{
		Fetch: func(context.Context, *auth.Token) (*auth.Token, error) {
			return &auth.Token{AccessToken: auth.NewSecret("bench-token"), Expiry: time.Now().Add(time.Hour)}, nil
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	if _, err := e.Credentials(context.Background()); err != nil {
		b.Fatal(err)
	}
	return e
}

func BenchmarkCachedHubHeaders(b *testing.B) {
	e := benchEngine(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.HubRequestHeaders(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCachedHubHeadersParallel(b *testing.B) {
	e := benchEngine(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.HubRequestHeaders(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkCachedMetadata(b *testing.B) {
	e := benchEngine(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.MessageServiceMetadata(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCachedMetadataParallel(b *testing.B) {
	e := benchEngine(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.MessageServiceMetadata(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func reuseTokenSource() oauth2.TokenSource {
	tok := &oauth2.Token{AccessToken: "bench-token", TokenType: "Bearer", Expiry: time.Now().Add(time.Hour)}
	return oauth2.ReuseTokenSource(tok, oauth2.StaticTokenSource(tok))
}

func BenchmarkOAuth2ReuseTokenSource(b *testing.B) {
	ts := reuseTokenSource()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ts.Token(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOAuth2ReuseTokenSourceParallel(b *testing.B) {
	ts := reuseTokenSource()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := ts.Token(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkTokenSource measures auth.TokenSource, an x/oauth2 TokenSource
// over an engine holding a valid token, beside x/oauth2's ReuseTokenSource
// (BenchmarkOAuth2ReuseTokenSource) in the same run.
func BenchmarkTokenSource(b *testing.B) {
	ts := auth.TokenSource(benchEngine(b))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ts.Token(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRefreshStorm is a report, not a speed figure: 64 goroutines read
// headers for 5 s while 1-second tokens come from a fetch that takes 50 ms,
// once on a quiet machine and once with 2 goroutines spinning beside them
// (a loaded machine, where timers fire late). It reports the fetches
// against their bound (one per refresh interval, plus the first) and the callers
// that found no valid token and waited for a fetch after the first token
// (target: 0 in both). Run it with -benchtime=1x.
func BenchmarkRefreshStorm(b *testing.B) {
	for _, busy := range []int{0, 2} {
		b.Run(fmt.Sprintf("busy=%d", busy), func(b *testing.B) {
			for b.Loop() {
				refreshStorm(b, busy)
			}
		})
	}
}

func refreshStorm(b *testing.B, busy int) {
	const (
		readers  = 64
		wall     = 5 * time.Second
		lifetime = time.Second
		latency  = 50 * time.Millisecond
	)
	var fetches atomic.Int64
	e, err := auth.NewEngine(auth.EngineConfig{
		Fetch: func(ctx context.Context, _ *auth.Token) (*auth.Token, error) {
			n := fetches.Add(1)
			select {
			case <-time.After(latency):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return &auth.Token{AccessToken: auth.NewSecret(fmt.Sprintf("storm-%d", n)), Expiry: time.Now().Add(lifetime)}, nil
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	if _, err := e.HubRequestHeaders(ctx); err != nil { // warm-up: the first token
		b.Fatal(err)
	}
	warm := e.Stats().Waits
	start := time.Now()
	var stop atomic.Bool
	for range busy {
		go func() {
			for !stop.Load() {
			}
		}()
	}
	var calls atomic.Int64
	var wg sync.WaitGroup
	for range readers {
		wg.Go(func() {
			n := int64(0)
			for time.Since(start) < wall {
				if _, err := e.HubRequestHeaders(ctx); err != nil {
					b.Error(err)
					return
				}
				n++
			}
			calls.Add(n)
		})
	}
	wg.Wait()
	stop.Store(true)
	elapsed := time.Since(start)
	b.ReportMetric(float64(fetches.Load()), "fetches")
	// One fetch per refresh interval (the lifetime less the default
	// margin, half of a 1-second token), plus the first.
	interval := lifetime - auth.Margin{}.For(lifetime, latency)
	b.ReportMetric(float64(elapsed/interval)+1, "fetch-bound")
	b.ReportMetric(float64(e.Stats().Waits-warm), "waits")
	b.ReportMetric(float64(calls.Load()), "calls")
}
