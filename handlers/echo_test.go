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
	"testing"
	"time"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/authtest"
)

// echo is a provider that answers every request with an error that repeats
// the request: its form, its query and its Authorization header, in the
// shape under test. Providers do this (error descriptions that quote the
// request, 500 pages that dump it).
func echo(t *testing.T, shape string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
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
	return srv
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
