package session

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/authkit-go/authkit/auth"
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
	return &engineHandler{Engine: e}
}

func benchRequest(b *testing.B) *http.Request {
	req, err := http.NewRequest(http.MethodGet, benchURL, nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Accept", "application/json")
	return req
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
	b.Run("retryablehttp", func(b *testing.B) {
		rc := retryablehttp.NewClient()
		rc.HTTPClient = &http.Client{Transport: noop{}}
		rc.Logger = nil
		runBench(b, func(r *http.Request) (*http.Response, error) {
			rr, err := retryablehttp.FromRequest(r)
			if err != nil {
				return nil, err
			}
			return rc.Do(rr)
		})
	})
	b.Run("retryablehttp+oauth2", func(b *testing.B) {
		rc := retryablehttp.NewClient()
		src := oauth2.ReuseTokenSource(nil, oauth2.StaticTokenSource(&oauth2.Token{
			AccessToken: "bench-access-token", TokenType: "Bearer", Expiry: time.Now().Add(24 * time.Hour)}))
		rc.HTTPClient = &http.Client{Transport: &oauth2.Transport{Source: src, Base: noop{}}}
		rc.Logger = nil
		runBench(b, func(r *http.Request) (*http.Response, error) {
			rr, err := retryablehttp.FromRequest(r)
			if err != nil {
				return nil, err
			}
			return rc.Do(rr)
		})
	})
}
