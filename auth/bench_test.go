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
			return &auth.Token{AccessToken: "bench-token", Expiry: time.Now().Add(time.Hour)}, nil
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

// BenchmarkRefreshStorm is a report, not a speed figure: 64 goroutines read
// headers for 5 s while 1-second tokens come from a fetch that takes 50 ms.
// It reports the fetches (target: at most wall/lifetime + 1), the callers
// that found no valid token and blocked on a fetch after the first token
// (target: 0), and — for honesty — the calls whose wall time reached 40 ms,
// which on a 2-core machine running 64 busy goroutines mostly measures the
// scheduler's preemption, not the engine. Run it with -benchtime=1x.
func BenchmarkRefreshStorm(b *testing.B) {
	const (
		readers  = 64
		wall     = 5 * time.Second
		lifetime = time.Second
		latency  = 50 * time.Millisecond
	)
	for b.Loop() {
		var fetches atomic.Int64
		e, err := auth.NewEngine(auth.EngineConfig{
			Fetch: func(ctx context.Context, _ *auth.Token) (*auth.Token, error) {
				n := fetches.Add(1)
				select {
				case <-time.After(latency):
				case <-ctx.Done():
					return nil, ctx.Err()
				}
				return &auth.Token{AccessToken: fmt.Sprintf("storm-%d", n), Expiry: time.Now().Add(lifetime)}, nil
			},
		})
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		if _, err := e.HubRequestHeaders(ctx); err != nil { // warm-up: the first token
			b.Fatal(err)
		}
		warm := e.Stats().Waits
		start := time.Now()
		var slow, calls atomic.Int64
		var wg sync.WaitGroup
		for range readers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Since(start) < wall {
					t0 := time.Now()
					if _, err := e.HubRequestHeaders(ctx); err != nil {
						b.Error(err)
						return
					}
					if time.Since(t0) >= 40*time.Millisecond {
						slow.Add(1)
					}
					calls.Add(1)
				}
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		waits := e.Stats().Waits - warm
		e.Close()
		b.ReportMetric(float64(fetches.Load()), "fetches")
		b.ReportMetric(float64(elapsed/lifetime)+1, "fetch-target")
		b.ReportMetric(float64(waits), "blocked-callers")
		b.ReportMetric(float64(slow.Load()), "calls>=40ms-wall")
		b.ReportMetric(float64(calls.Load()), "calls")
	}
}

// BenchmarkRefreshStormControl runs BenchmarkRefreshStorm's readers over a
// bare atomic load, with no engine: its calls>=40ms-wall is the scheduler's
// share of that figure on the machine at hand.
func BenchmarkRefreshStormControl(b *testing.B) {
	var p atomic.Pointer[string]
	s := "x"
	p.Store(&s)
	for b.Loop() {
		start := time.Now()
		var slow atomic.Int64
		var wg sync.WaitGroup
		for range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Since(start) < 5*time.Second {
					t0 := time.Now()
					if p.Load() == nil {
						b.Error("nil")
					}
					if time.Since(t0) >= 40*time.Millisecond {
						slow.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		b.ReportMetric(float64(slow.Load()), "calls>=40ms-wall")
	}
}
