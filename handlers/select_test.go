package handlers

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/authtest"
)

// envOf is an environment made of a map.
func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestSelectOrder(t *testing.T) {
	p := newProvider(t, nil, func(pc *authtest.ProviderConfig) { pc.DeviceInterval = time.Second })
	p.AutoApprove("ada", 0)
	jwt := p.IssueAccessToken("grace", "app", nil, time.Hour)
	allEnv := map[string]string{
		"AUTHKIT_API_KEY_ID": "env-key", "AUTHKIT_API_KEY": "env-secret-1",
		"AUTHKIT_CLIENT_ID": "svc", "AUTHKIT_CLIENT_SECRET": svcSecret,
	}
	oauth := OAuthConfig{Endpoints: Endpoints{Issuer: p.Issuer()}, ClientID: "cli"}
	noPrompt := func(context.Context, DevicePrompt) error { return nil }

	// A store that holds ada's login, made by an earlier device login.
	stored := &auth.MemoryStore{}
	first, err := NewDeviceCode(DeviceCodeConfig{OAuthConfig: func() OAuthConfig { c := oauth; c.Store = stored; return c }(), Prompt: noPrompt})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Authenticate(testCtx(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	first.Close()

	tests := []struct {
		name     string
		cfg      SelectConfig
		want     Source
		wantUser string
	}{
		{"a JWT callback in code comes first", SelectConfig{
			JWT:     ExternallyManagedJWTConfig{Callback: func(context.Context) (string, time.Time, error) { return jwt, time.Time{}, nil }},
			APIKeys: APIKeysConfig{KeyID: "k", Key: auth.NewSecret("s"), Username: "bot"}, Getenv: envOf(allEnv), OAuth: oauth,
		}, SourceJWTCallback, "grace"},
		{"API keys in code before the environment", SelectConfig{
			APIKeys: APIKeysConfig{KeyID: "k", Key: auth.NewSecret("s"), Username: "bot"}, Getenv: envOf(allEnv), OAuth: oauth,
		}, SourceAPIKeys, "bot"},
		{"API keys from the environment before client credentials", SelectConfig{Getenv: envOf(allEnv), OAuth: oauth}, SourceAPIKeysEnv, "env-key"},
		{"an SDK's own prefix and key user", SelectConfig{EnvPrefix: "MYSDK_", Getenv: envOf(map[string]string{
			"MYSDK_API_KEY_ID": "id", "MYSDK_API_KEY": "s", "MYSDK_API_KEY_USER": "ci-bot", "AUTHKIT_API_KEY_ID": "ignored"})}, SourceAPIKeysEnv, "ci-bot"},
		{"client credentials from the environment", SelectConfig{Getenv: envOf(map[string]string{
			"AUTHKIT_CLIENT_ID": "svc", "AUTHKIT_CLIENT_SECRET": svcSecret}), OAuth: oauth}, SourceClientCredentialsEnv, ""},
		{"a stored login before an interactive one", SelectConfig{Getenv: envOf(nil), OAuth: func() OAuthConfig { c := oauth; c.Store = stored; return c }(),
			Interactive: InteractiveDevice, Prompt: func(context.Context, DevicePrompt) error { t.Error("prompted although a login was stored"); return nil }},
			SourceStoredLogin, "ada"},
		{"an interactive login last", SelectConfig{Getenv: envOf(nil), OAuth: oauth, Interactive: InteractiveDevice, Prompt: noPrompt},
			SourceInteractive, "ada"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Select(testCtx(t, 10*time.Second), tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.Source != tt.want {
				t.Fatalf("Source = %q, want %q", s.Source, tt.want)
			}
			if err := s.Authenticate(testCtx(t, 10*time.Second)); err != nil {
				t.Fatal(err)
			}
			if _, err := s.HubRequestHeaders(testCtx(t, 10*time.Second)); err != nil {
				t.Fatal(err)
			}
			if s.Username() != tt.wantUser {
				t.Errorf("Username() = %q, want %q", s.Username(), tt.wantUser)
			}
		})
	}
}

// A half-configured source is an error, not a fall-through to the next;
// nothing configured lists every source and why it was skipped. No error
// carries a secret.
func TestSelectErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  SelectConfig
		is   error
		want []string
	}{
		{"key id without key", SelectConfig{Getenv: envOf(map[string]string{"AUTHKIT_API_KEY_ID": "id", "AUTHKIT_CLIENT_ID": "svc", "AUTHKIT_CLIENT_SECRET": "cs-secret"})},
			auth.ErrInvalidConfig, []string{"AUTHKIT_API_KEY_ID and AUTHKIT_API_KEY must be set together; only AUTHKIT_API_KEY_ID is"}},
		{"client secret without id", SelectConfig{Getenv: envOf(map[string]string{"AUTHKIT_CLIENT_SECRET": "cs-secret"})},
			auth.ErrInvalidConfig, []string{"only AUTHKIT_CLIENT_SECRET is"}},
		{"API keys in code without a user", SelectConfig{APIKeys: APIKeysConfig{KeyID: "k", Key: auth.NewSecret("ak-secret")}},
			auth.ErrInvalidConfig, []string{"API keys (in code)"}},
		{"nothing configured", SelectConfig{Getenv: envOf(nil)}, ErrNoCredentials, []string{
			"externally managed JWT (in code): no callback given",
			"API keys (in code): none given",
			"API keys (environment): AUTHKIT_API_KEY_ID and AUTHKIT_API_KEY are not set",
			"client credentials (environment): AUTHKIT_CLIENT_ID and AUTHKIT_CLIENT_SECRET are not set",
			"stored login: no OAuth client configured",
			"interactive login: no OAuth client configured",
		}},
		{"a client but no store and no interactive login", SelectConfig{Getenv: envOf(nil),
			OAuth: OAuthConfig{Endpoints: Endpoints{Issuer: "https://idp.example"}, ClientID: "cli"}}, ErrNoCredentials, []string{
			"stored login: no token store configured", "interactive login: not enabled"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Select(context.Background(), tt.cfg)
			if !errors.Is(err, tt.is) {
				t.Fatalf("Select = %v, %v; want an error wrapping %v", s, err, tt.is)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			for _, secret := range []string{"cs-secret", "ak-secret"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error shows a secret: %v", err)
				}
			}
		})
	}
}
