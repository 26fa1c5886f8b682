package auth_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/authtest"
)

func TestOAuth2RoundTrip(t *testing.T) {
	exp := time.Date(2030, 1, 1, 1, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		tok  *auth.Token
	}{
		{name: "nil"},
		{name: "access token only", tok: &auth.Token{AccessToken: auth.NewSecret("at")}},
		{name: "full", tok: &auth.Token{
			AccessToken:  auth.NewSecret("at"),
			TokenType:    "Bearer",
			RefreshToken: auth.NewSecret("rt"),
			IDToken:      auth.NewSecret("id"),
			Scope:        "a b",
			Expiry:       exp,
			Extra:        map[string]auth.Secret{"session_state": auth.NewSecret("s"), "refresh_expires_in": auth.NewSecret("1800"), "nested": auth.NewSecret(`{"k":"v"}`)},
		}},
		{name: "lowercase type, extra only", tok: &auth.Token{AccessToken: auth.NewSecret("at"), TokenType: "bearer", Extra: map[string]auth.Secret{"x": auth.NewSecret("true")}}},
		{name: "id token without refresh", tok: &auth.Token{AccessToken: auth.NewSecret("at"), IDToken: auth.NewSecret("id"), Expiry: exp}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := auth.ToOAuth2(tt.tok)
			if tt.tok == nil {
				if o != nil || auth.FromOAuth2(nil) != nil {
					t.Fatal("nil did not convert to nil")
				}
				return
			}
			if o.AccessToken != tt.tok.AccessToken.Reveal() || o.TokenType != tt.tok.TokenType ||
				o.RefreshToken != tt.tok.RefreshToken.Reveal() || !o.Expiry.Equal(tt.tok.Expiry) {
				t.Errorf("ToOAuth2 = %+v, want the fields of %v", o, tt.tok)
			}
			if tt.tok.IDToken.Reveal() != "" && o.Extra("id_token") != tt.tok.IDToken.Reveal() {
				t.Errorf(`Extra("id_token") = %v, want %q`, o.Extra("id_token"), tt.tok.IDToken)
			}
			for k, v := range tt.tok.Extra {
				if fmt.Sprint(o.Extra(k)) != v.Reveal() {
					t.Errorf("Extra(%q) = %v, want %v", k, o.Extra(k), v)
				}
			}
			sameToken(t, auth.FromOAuth2(o), tt.tok)
		})
	}
}

// TestFromOAuth2FetchedToken converts a token that x/oauth2 itself fetched.
func TestOAuth2FromFetchedToken(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"access_token":"at","token_type":"bearer","refresh_token":"rt","expires_in":3600,"id_token":"id","scope":"a b","session_state":"s"}`)
	}))
	defer srv.Close()
	cfg := clientcredentials.Config{ClientID: "c", ClientSecret: "s", TokenURL: srv.URL}
	before := time.Now()
	o, err := cfg.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tok := auth.FromOAuth2(o)
	if tok.AccessToken.Reveal() != "at" || tok.RefreshToken.Reveal() != "rt" || tok.TokenType != "bearer" || tok.IDToken.Reveal() != "id" || tok.Scope != "a b" {
		t.Errorf("FromOAuth2 = %+v", *tok)
	}
	if tok.Expiry.Before(before.Add(59*time.Minute)) || tok.Expiry.After(time.Now().Add(time.Hour)) {
		t.Errorf("Expiry = %v, want about an hour from now", tok.Expiry)
	}
	if tok.Extra != nil {
		t.Errorf("Extra = %v, want nil (x/oauth2 cannot list its fields)", tok.Extra)
	}
}

// countingSource is an oauth2.TokenSource that hands out numbered tokens.
type countingSource struct {
	calls    atomic.Int32
	lifetime time.Duration
	clock    *authtest.Clock
}

func (s *countingSource) Token() (*oauth2.Token, error) {
	n := s.calls.Add(1)
	return &oauth2.Token{AccessToken: fmt.Sprintf("at-%d", n), TokenType: "Bearer", Expiry: s.clock.Now().Add(s.lifetime)}, nil
}

func TestOAuth2EngineFedByTokenSource(t *testing.T) {
	clock := authtest.NewClock(time.Time{})
	tests := []struct {
		name string
		// source returns the source and how many times it was called.
		source      func() (oauth2.TokenSource, func() int32)
		advance     bool   // move the clock past the first token's expiry
		wantBefore  string // access token at first
		wantAfter   string // access token at the end
		wantFetches int64
	}{
		{
			name: "static",
			source: func() (oauth2.TokenSource, func() int32) {
				return oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "static", TokenType: "Bearer"}), nil
			},
			wantBefore: "static", wantAfter: "static", wantFetches: 1,
		},
		{
			name: "counting",
			source: func() (oauth2.TokenSource, func() int32) {
				s := &countingSource{lifetime: time.Hour, clock: clock}
				return s, s.calls.Load
			},
			advance: true, wantBefore: "at-1", wantAfter: "at-2", wantFetches: 2,
		},
		{
			// ReuseTokenSource reads the real clock, so the fake clock
			// stays put here.
			name: "reuse over counting",
			source: func() (oauth2.TokenSource, func() int32) {
				s := &countingSource{lifetime: time.Hour, clock: clock}
				return oauth2.ReuseTokenSource(nil, s), s.calls.Load
			},
			wantBefore: "at-1", wantAfter: "at-1", wantFetches: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts, calls := tt.source()
			e, err := auth.NewEngine(auth.EngineConfig{Fetch: auth.FetchFromTokenSource(ts), Clock: clock})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			ctx := context.Background()
			h, err := e.HubRequestHeaders(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := h.Get("Authorization"), "Bearer "+tt.wantBefore; got != want {
				t.Errorf("Authorization = %q, want %q", got, want)
			}
			if _, err := e.Token(ctx); err != nil { // served from the cache
				t.Fatal(err)
			}
			if tt.advance {
				clock.Advance(2 * time.Hour)
			}
			tok, err := e.Token(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if tok.AccessToken.Reveal() != tt.wantAfter {
				t.Errorf("after expiry: access token = %q, want %q", tok.AccessToken, tt.wantAfter)
			}
			if calls != nil && int64(calls()) != tt.wantFetches {
				t.Errorf("source called %d times, want %d", calls(), tt.wantFetches)
			}
			if got := e.Stats().Fetches; got != tt.wantFetches {
				t.Errorf("engine fetched %d times, want %d", got, tt.wantFetches)
			}
		})
	}
}

// blockingSource never answers until released.
type blockingSource struct{ release chan struct{} }

func (s blockingSource) Token() (*oauth2.Token, error) {
	<-s.release
	return nil, errors.New("released")
}

func TestOAuth2FetchFromTokenSourceHonoursCtx(t *testing.T) {
	src := blockingSource{release: make(chan struct{})}
	defer close(src.release)
	fetch := auth.FetchFromTokenSource(src)
	tests := []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{name: "cancelled before", ctx: func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}, want: context.Canceled},
		{name: "deadline while waiting", ctx: func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 20*time.Millisecond)
		}, want: context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := tt.ctx()
			defer cancel()
			tok, err := fetch(ctx, nil)
			if tok != nil || !errors.Is(err, tt.want) {
				t.Errorf("fetch = %v, %v; want %v", tok, err, tt.want)
			}
		})
	}
}

func TestOAuth2FetchFromTokenSourceErrors(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		body      string
		wantIs    error
		wantOAuth string // the *OAuthError's code, if one is expected
	}{
		{name: "invalid_grant", status: 400, body: `{"error":"invalid_grant","error_description":"refresh token revoked"}`, wantIs: auth.ErrInvalidGrant, wantOAuth: "invalid_grant"},
		{name: "invalid_client", status: 401, body: `{"error":"invalid_client"}`, wantOAuth: "invalid_client"},
		{name: "no error code", status: 500, body: `<html>oops</html>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			cfg := clientcredentials.Config{ClientID: "c", ClientSecret: "client-SECRET", TokenURL: srv.URL}
			_, err := auth.FetchFromTokenSource(cfg.TokenSource(context.Background()))(context.Background(), nil)
			if err == nil {
				t.Fatal("fetch succeeded, want an error")
			}
			var re *oauth2.RetrieveError
			if !errors.As(err, &re) || re.Response.StatusCode != tt.status {
				t.Errorf("error %v does not carry the *oauth2.RetrieveError", err)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.wantIs)
			}
			var oe *auth.OAuthError
			if got := errors.As(err, &oe); got != (tt.wantOAuth != "") || got && (oe.Code != tt.wantOAuth || oe.StatusCode != tt.status) {
				t.Errorf("error %v: *OAuthError = %+v, want code %q", err, oe, tt.wantOAuth)
			}
		})
	}
}

func TestOAuth2TokenSourceWithTransport(t *testing.T) {
	tests := []struct {
		name       string
		tokenType  string
		want       []string // Authorization header of each request
		invalidate bool     // invalidate after the first request
	}{
		{name: "bearer", tokenType: "Bearer", want: []string{"Bearer at-1", "Bearer at-1"}},
		{name: "lowercase type is normalised by x/oauth2", tokenType: "bearer", want: []string{"Bearer at-1"}},
		{name: "empty type means Bearer", tokenType: "", want: []string{"Bearer at-1"}},
		{name: "invalidated between requests", tokenType: "Bearer", want: []string{"Bearer at-1", "Bearer at-2"}, invalidate: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var got []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				got = append(got, r.Header.Get("Authorization"))
				if n := len(r.Header.Values("Authorization")); n != 1 {
					t.Errorf("%d Authorization headers, want 1", n)
				}
				mu.Unlock()
			}))
			defer srv.Close()
			var n atomic.Int32
			clock := authtest.NewClock(time.Time{})
			e, err := auth.NewEngine(auth.EngineConfig{
				Clock: clock,
				Fetch: func(ctx context.Context, _ *auth.Token) (*auth.Token, error) {
					return &auth.Token{AccessToken: auth.NewSecret(fmt.Sprintf("at-%d", n.Add(1))), TokenType: tt.tokenType, Expiry: clock.Now().Add(time.Hour)}, nil
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			client := &http.Client{Transport: &oauth2.Transport{Source: auth.TokenSource(e), Base: srv.Client().Transport}}
			for i := range tt.want {
				if i == 1 && tt.invalidate {
					e.Invalidate(auth.ServiceHub, "")
				}
				resp, err := client.Get(srv.URL)
				if err != nil {
					t.Fatal(err)
				}
				_ = resp.Body.Close()
			}
			mu.Lock()
			defer mu.Unlock()
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("Authorization headers = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestOAuth2TokenSourceErrors(t *testing.T) {
	errIdP := errors.New("identity provider down")
	tests := []struct {
		name   string
		cfg    auth.EngineConfig
		wantIs error
	}{
		{name: "fetch fails", cfg: auth.EngineConfig{
			Fetch: func(context.Context, *auth.Token) (*auth.Token, error) { return nil, errIdP },
		}, wantIs: errIdP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Clock = authtest.NewClock(time.Time{})
			e, err := auth.NewEngine(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			tok, err := auth.TokenSource(e).Token()
			if tok != nil || !errors.Is(err, tt.wantIs) {
				t.Errorf("Token() = %v, %v; want %v", tok, err, tt.wantIs)
			}
		})
	}
}

// auth.TokenSource converts a token once and shares it (x/oauth2 forbids
// modifying a returned token): at most one allocation per call.
func TestTokenSourceAllocs(t *testing.T) {
	e, err := auth.NewEngine(auth.EngineConfig{
		Fetch:   func(context.Context, *auth.Token) (*auth.Token, error) { return nil, errors.New("no fetch") },
		Initial: &auth.Token{AccessToken: auth.NewSecret("at"), TokenType: "Bearer", Expiry: time.Now().Add(time.Hour)},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ts := auth.TokenSource(e)
	first, err := ts.Token()
	if err != nil || first.AccessToken != "at" {
		t.Fatalf("Token = %v, %v", first, err)
	}
	if allocs := testing.AllocsPerRun(100, func() { ts.Token() }); allocs > 1 {
		t.Errorf("%v allocations per Token call, want at most 1", allocs)
	}
}

// TestTokenSourceRefusesDPoPTokens: a DPoP-bound token is not handed to
// x/oauth2, which would send it without a proof; a bearer token of a
// DPoP handler (a provider that ignored the proof) is.
func TestTokenSourceRefusesDPoPTokens(t *testing.T) {
	key, err := auth.NewDPoPKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{"DPoP", "Bearer"} {
		e, err := auth.NewEngine(auth.EngineConfig{Fetch: func(context.Context, *auth.Token) (*auth.Token, error) {
			return &auth.Token{AccessToken: auth.NewSecret("tok"), TokenType: typ, DPoPKey: key, Expiry: time.Now().Add(time.Hour)}, nil
		}})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		_, err = auth.TokenSource(e).Token()
		if refused := errors.Is(err, auth.ErrUnsupportedTokenType); refused != (typ == "DPoP") {
			t.Errorf("%s token: %v", typ, err)
		}
	}
}
