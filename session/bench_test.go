package session

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authkit-go/authkit/auth"
	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/go-retryablehttp"
	"golang.org/x/oauth2"
)

// noop is a base transport that answers 200 at once. Every variant gets a
// fresh response, as from a real transport.
type noop struct{}

func (noop) RoundTrip(req *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Status: "200 OK", Header: http.Header{}, Body: http.NoBody, Request: req}, nil
}

const benchURL = "https://hub.example.com/api/v1/things?limit=10"

func benchHandler(b *testing.B) auth.AuthenticationHandler {
	e, err := auth.NewEngine(auth.EngineConfig{
		Fetch: func(context.Context, *auth.Token) (*auth.Token, error) { return nil, nil },
		Initial: &auth.Token{AccessToken: auth.NewSecret("bench-access-token"), TokenType: "Bearer",
			Expiry: time.Now().Add(24 * time.Hour)},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	return auth.Handler(e, "bench")
}

func benchRequest(b *testing.B) *http.Request {
	req, err := http.NewRequest(http.MethodGet, benchURL, nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Accept", "application/json")
	return req
}

// retrying returns the Do of a go-retryablehttp client (default settings,
// no logger) that sends through rt.
func retrying(rt http.RoundTripper) func(*http.Request) (*http.Response, error) {
	rc := retryablehttp.NewClient()
	rc.HTTPClient = &http.Client{Transport: rt}
	rc.Logger = nil
	return func(r *http.Request) (*http.Response, error) {
		rr, err := retryablehttp.FromRequest(r)
		if err != nil {
			return nil, err
		}
		return rc.Do(rr)
	}
}

// oauth2Transport is golang.org/x/oauth2's Transport over a reused static
// token, on base.
func oauth2Transport(base http.RoundTripper) http.RoundTripper {
	src := oauth2.ReuseTokenSource(nil, oauth2.StaticTokenSource(&oauth2.Token{
		AccessToken: "bench-access-token", TokenType: "Bearer", Expiry: time.Now().Add(24 * time.Hour)}))
	return &oauth2.Transport{Source: src, Base: base}
}

func runBench(b *testing.B, do func(*http.Request) (*http.Response, error)) {
	req := benchRequest(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		resp, err := do(req)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
	}
}

// BenchmarkRequest compares one authenticated GET through a no-op base
// transport: the session (default config, and without the per-attempt
// timer), plain net/http with a static header, go-retryablehttp alone, and
// go-retryablehttp with golang.org/x/oauth2's Transport.
func BenchmarkRequest(b *testing.B) {
	b.Run("session", func(b *testing.B) {
		s, err := New(benchHandler(b), Config{HubURL: "https://hub.example.com/api", Transport: noop{}})
		if err != nil {
			b.Fatal(err)
		}
		runBench(b, s.Do)
	})
	b.Run("session-no-attempt-timeout", func(b *testing.B) {
		s, err := New(benchHandler(b), Config{HubURL: "https://hub.example.com/api", Transport: noop{}, AttemptTimeout: -1})
		if err != nil {
			b.Fatal(err)
		}
		runBench(b, s.Do)
	})
	b.Run("session-ctx-deadline", func(b *testing.B) {
		// A caller's deadline below AttemptTimeout makes the attempt timer moot.
		s, err := New(benchHandler(b), Config{HubURL: "https://hub.example.com/api", Transport: noop{}})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		runBench(b, func(r *http.Request) (*http.Response, error) { return s.Do(r.WithContext(ctx)) })
	})
	b.Run("session-httpclient", func(b *testing.B) {
		s, err := New(benchHandler(b), Config{HubURL: "https://hub.example.com/api", Transport: noop{}})
		if err != nil {
			b.Fatal(err)
		}
		runBench(b, s.HTTPClient().Do)
	})
	b.Run("nethttp-static-header", func(b *testing.B) {
		c := &http.Client{Transport: noop{}}
		req := benchRequest(b)
		req.Header.Set("Authorization", "Bearer bench-access-token")
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			resp, err := c.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
		}
	})
	b.Run("nethttp-oauth2", func(b *testing.B) {
		// x/oauth2's Transport on net/http: like the session, it leaves the
		// caller's request alone and sends a copy with the header.
		runBench(b, (&http.Client{Transport: oauth2Transport(noop{})}).Do)
	})
	b.Run("retryablehttp", func(b *testing.B) { runBench(b, retrying(noop{})) })
	b.Run("retryablehttp-oauth2", func(b *testing.B) { runBench(b, retrying(oauth2Transport(noop{}))) })
}

// BenchmarkLoopback compares the same authenticated GET over loopback HTTP
// with 64 concurrent clients: the session's Do and HTTPClient, plain
// net/http with a static header, two control RoundTrippers (one that does
// nothing, one that clones the request to add the header), go-retryablehttp
// alone (the header set by hand) and as a RoundTripper, and go-retryablehttp
// with golang.org/x/oauth2's Transport. On a 2-core machine run each
// variant in its own process, interleaved, and compare medians: the order
// of sub-benchmarks in one process skews throughput by several percent. Every
// variant gets its own server and a base transport configured alike; the
// server asserts the credential, so a variant that sends none fails.
// Allocations include the in-process server's, the same for every variant.
func BenchmarkLoopback(b *testing.B) {
	const clients = 64
	newServer := func(b *testing.B) (*httptest.Server, http.RoundTripper) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer bench-access-token" {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"things":[]}`))
		}))
		var conns atomic.Int64
		srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				conns.Add(1)
			}
		}
		b.Cleanup(func() { b.ReportMetric(float64(conns.Load()), "conns") })
		b.Cleanup(srv.Close)
		base := cleanhttp.DefaultPooledTransport()
		base.MaxIdleConnsPerHost = clients
		b.Cleanup(base.CloseIdleConnections)
		return srv, base
	}
	run := func(b *testing.B, url string, do func(*http.Request) (*http.Response, error), static bool) {
		b.ReportAllocs()
		b.SetParallelism((clients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			req, err := http.NewRequest(http.MethodGet, url+"/api/v1/things?limit=10", nil)
			if err != nil {
				b.Error(err)
				return
			}
			req.Header.Set("Accept", "application/json")
			if static {
				req.Header.Set("Authorization", "Bearer bench-access-token")
			}
			for pb.Next() {
				resp, err := do(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Errorf("status %d", resp.StatusCode)
					return
				}
			}
		})
	}
	b.Run("session-do", func(b *testing.B) {
		srv, base := newServer(b)
		s, err := New(benchHandler(b), Config{HubURL: srv.URL + "/api", Transport: base})
		if err != nil {
			b.Fatal(err)
		}
		run(b, srv.URL, s.Do, false)
	})
	b.Run("session-do-no-attempt-timeout", func(b *testing.B) {
		srv, base := newServer(b)
		s, err := New(benchHandler(b), Config{HubURL: srv.URL + "/api", Transport: base, AttemptTimeout: -1})
		if err != nil {
			b.Fatal(err)
		}
		run(b, srv.URL, s.Do, false)
	})
	b.Run("session-httpclient", func(b *testing.B) {
		srv, base := newServer(b)
		s, err := New(benchHandler(b), Config{HubURL: srv.URL + "/api", Transport: base})
		if err != nil {
			b.Fatal(err)
		}
		run(b, srv.URL, s.HTTPClient().Do, false)
	})
	b.Run("nethttp-static-header", func(b *testing.B) {
		srv, base := newServer(b)
		run(b, srv.URL, (&http.Client{Transport: base}).Do, true)
	})
	b.Run("nethttp-passthrough", func(b *testing.B) {
		// Control: a RoundTripper that does nothing but call the next one.
		srv, base := newServer(b)
		run(b, srv.URL, (&http.Client{Transport: passThrough{base}}).Do, true)
	})
	b.Run("nethttp-clone", func(b *testing.B) {
		// Control: the least a RoundTripper that adds a header may do
		// without modifying the caller's request.
		srv, base := newServer(b)
		run(b, srv.URL, (&http.Client{Transport: cloneWithHeader{base}}).Do, false)
	})
	b.Run("retryablehttp", func(b *testing.B) {
		srv, base := newServer(b)
		run(b, srv.URL, retrying(base), true)
	})
	b.Run("retryablehttp-roundtripper", func(b *testing.B) {
		// go-retryablehttp as an http.Client's transport: what HTTPClient compares with.
		srv, base := newServer(b)
		rc := retryablehttp.NewClient()
		rc.HTTPClient = &http.Client{Transport: base}
		rc.Logger = nil
		run(b, srv.URL, (&http.Client{Transport: &retryablehttp.RoundTripper{Client: rc}}).Do, true)
	})
	b.Run("retryablehttp-oauth2", func(b *testing.B) {
		srv, base := newServer(b)
		run(b, srv.URL, retrying(oauth2Transport(base)), false)
	})
}

// passThrough is a RoundTripper that only calls base.
type passThrough struct{ base http.RoundTripper }

func (p passThrough) RoundTrip(r *http.Request) (*http.Response, error) { return p.base.RoundTrip(r) }

// cloneWithHeader clones the request and sets the credential on the copy.
type cloneWithHeader struct{ base http.RoundTripper }

func (p cloneWithHeader) RoundTrip(r *http.Request) (*http.Response, error) {
	r2 := r.Clone(r.Context())
	r2.Header["Authorization"] = []string{"Bearer bench-access-token"}
	return p.base.RoundTrip(r2)
}
