package handlers

import (
	"context"
	"encoding/base64"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/authtest"
)

// echo is a provider that answers every request with an error that repeats
// the request: its form, its query and its Authorization header, in the
// shape under test. Providers do this (error descriptions that quote the
// request, 500 pages that dump it).
func echo(t *testing.T, shape string) *echoServer {
	t.Helper()
	e := &echoServer{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		e.requests.Add(1)
		if form, err := url.ParseQuery(string(body)); err == nil {
			e.mu.Lock()
			e.forms = append(e.forms, form)
			e.mu.Unlock()
		}
		dump := fmt.Sprintf("%s ?%s auth=%s form=%s", r.URL.Path, r.URL.RawQuery, r.Header.Get("Authorization"), body)
		decoded, _ := url.QueryUnescape(string(body))
		switch shape {
		case "oauth error description":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"error":"invalid_request","error_description":%q,"error_uri":%q}`, dump+" decoded="+decoded,
				"https://idp.example/help?"+string(body))
		case "html 500 page":
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprintf(w, "<html><body><pre>%s\n%s</pre></body></html>", html.EscapeString(dump), html.EscapeString(decoded))
		case "text 502":
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprint(w, dump, "\n", decoded)
		case "json 200 without a token":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"message":%q}`, dump+" "+decoded)
		case "invalid_client 401":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintf(w, `{"error":"invalid_client","error_description":%q}`, "bad credentials in "+dump)
		}
	}))
	t.Cleanup(srv.Close)
	e.Server = srv
	return e
}

// echoServer is an echoing provider that counts the requests it answered
// and keeps their forms.
type echoServer struct {
	*httptest.Server
	requests atomic.Int32
	mu       sync.Mutex // guards forms
	forms    []url.Values
}

// sent returns every value the client sent under key.
func (e *echoServer) sent(key string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, f := range e.forms {
		out = append(out, f[key]...)
	}
	return out
}

// Every value the client sent — client secret, password, TOTP code, refresh
// token, device code, the Basic header — is removed from every error and
// every log record, whatever shape the echo takes.
func TestProviderEchoesNoSecret(t *testing.T) {
	const (
		secret   = "cs-ECHO-7f3a9c1e5b"
		password = "pw ECHO correct/horse+battery&staple"
		refresh  = "rt-ECHO-0a1b2c3d4e5f"
	)
	basic := base64.StdEncoding.EncodeToString([]byte("svc:" + url.QueryEscape(secret)))
	secrets := []string{secret, password, url.QueryEscape(password), refresh, basic, adaTOTP}
	shapes := []string{"oauth error description", "html 500 page", "text 502", "json 200 without a token", "invalid_client 401"}
	grants := []struct {
		name string
		make func(cfg OAuthConfig) (auth.AuthenticationHandler, func(), error)
	}{
		{"client credentials, basic", func(cfg OAuthConfig) (auth.AuthenticationHandler, func(), error) {
			cfg.ClientID, cfg.ClientSecret = "svc", auth.NewSecret(secret)
			h, err := NewClientCredentials(ClientCredentialsConfig{OAuthConfig: cfg})
			return h, func() { h.Close() }, err
		}},
		{"client credentials, post", func(cfg OAuthConfig) (auth.AuthenticationHandler, func(), error) {
			cfg.ClientID, cfg.ClientSecret, cfg.AuthStyle = "svc", auth.NewSecret(secret), AuthStylePost
			h, err := NewClientCredentials(ClientCredentialsConfig{OAuthConfig: cfg})
			return h, func() { h.Close() }, err
		}},
		{"password + TOTP", func(cfg OAuthConfig) (auth.AuthenticationHandler, func(), error) {
			cfg.ClientID = "cli"
			h, err := NewPassword(PasswordConfig{OAuthConfig: cfg, Username: "ada", Password: auth.NewSecret(password), TOTPSecret: auth.NewSecret(adaTOTP)})
			return h, func() { h.Close() }, err
		}},
		{"refresh token", func(cfg OAuthConfig) (auth.AuthenticationHandler, func(), error) {
			cfg.ClientID = "cli"
			h, err := NewRefreshToken(RefreshTokenConfig{OAuthConfig: cfg, RefreshToken: auth.NewSecret(refresh)})
			return h, func() { h.Close() }, err
		}},
		{"device code (authorization request)", func(cfg OAuthConfig) (auth.AuthenticationHandler, func(), error) {
			cfg.ClientID, cfg.ClientSecret = "svc", auth.NewSecret(secret)
			cfg.DeviceAuthorizationURL = cfg.TokenURL
			h, err := NewDeviceCode(DeviceCodeConfig{OAuthConfig: cfg, LoginOnDemand: true, NoBrowser: true,
				Prompt: func(context.Context, DevicePrompt) error { return nil }})
			return h, func() { h.Close() }, err
		}},
	}
	for _, shape := range shapes {
		for _, g := range grants {
			t.Run(shape+"/"+g.name, func(t *testing.T) {
				srv := echo(t, shape)
				logs := &authtest.LogBuffer{}
				cfg := OAuthConfig{
					Endpoints: Endpoints{TokenURL: srv.URL + "/token?tenant=acme"},
					Logger:    slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
				}
				h, closeH, err := g.make(cfg)
				if err != nil {
					t.Fatal(err)
				}
				defer closeH()
				// Transient answers are retried until the caller gives up;
				// the error then carries the last attempt's.
				ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
				defer cancel()
				_, err = h.HubRequestHeaders(ctx)
				if err == nil {
					t.Fatal("no error from a provider that only fails")
				}
				if srv.requests.Load() == 0 {
					t.Fatal("the provider was never asked: nothing was tested")
				}
				for where, text := range map[string]string{"error": err.Error(), "error %+v": fmt.Sprintf("%+v", err), "logs": logs.String()} {
					for _, s := range secrets {
						if strings.Contains(text, s) {
							t.Errorf("%s carries a secret the client sent (%.8s...): %s", where, s, text)
						}
					}
				}
			})
		}
	}
}

// A browser login's code exchange answered by an echoing provider: the
// authorization code and the PKCE verifier it sent appear in no error, log
// record or landing page (which shows the LoginOutcome's error).
func TestBrowserLoginEchoesNoSecret(t *testing.T) {
	const code = "code-ECHO-5e6f7a8b9c"
	for _, shape := range []string{"oauth error description", "html 500 page", "text 502", "json 200 without a token"} {
		t.Run(shape, func(t *testing.T) {
			srv := echo(t, shape)
			logs := &authtest.LogBuffer{}
			var (
				mu      sync.Mutex
				landing string // the default landing page, as the browser shows it
			)
			landed := make(chan struct{})
			h, err := NewBrowserLogin(BrowserLoginConfig{
				OAuthConfig: OAuthConfig{
					Endpoints: Endpoints{AuthorizationURL: srv.URL + "/authorize", TokenURL: srv.URL + "/token"},
					ClientID:  "cli",
					Logger:    slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
				},
				Output: io.Discard,
				// The person's browser: the provider sends it back with a code.
				OpenBrowser: func(_ context.Context, authURL string) error {
					u, err := url.Parse(authURL)
					if err != nil {
						return err
					}
					q := u.Query()
					go func() {
						defer close(landed)
						resp, err := http.Get(q.Get("redirect_uri") + "?code=" + code + "&state=" + url.QueryEscape(q.Get("state")))
						if err != nil {
							return
						}
						b, _ := io.ReadAll(resp.Body)
						resp.Body.Close()
						mu.Lock()
						landing = string(b)
						mu.Unlock()
					}()
					return nil
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err = h.Authenticate(ctx)
			if err == nil {
				t.Fatal("no error from a provider that only fails")
			}
			select {
			case <-landed:
			case <-time.After(10 * time.Second):
				t.Fatal("the browser never got its landing page")
			}
			verifiers := srv.sent("code_verifier")
			if len(verifiers) == 0 || len(srv.sent("code")) == 0 {
				t.Fatal("the code was never exchanged: nothing was tested")
			}
			mu.Lock()
			if landing == "" {
				t.Error("the landing page is empty")
			}
			texts := map[string]string{"error": err.Error(), "error %+v": fmt.Sprintf("%+v", err), "logs": logs.String(),
				"landing page": landing}
			mu.Unlock()
			for where, text := range texts {
				for _, s := range append(verifiers, code) {
					if strings.Contains(text, s) {
						t.Errorf("%s carries the code or the verifier (%.8s...): %s", where, s, text)
					}
				}
			}
		})
	}
}
