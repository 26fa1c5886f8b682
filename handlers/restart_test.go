package handlers

import (
	"context"
	"testing"
	"time"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/authtest"
)

// TestUsernameAfterRestart: a handler whose token comes from the store
// (a new process) knows the user from the stored ID token, for every
// OAuth handler that logs a user in.
func TestUsernameAfterRestart(t *testing.T) {
	p := newProvider(t, nil, func(pc *authtest.ProviderConfig) { pc.DeviceInterval = time.Second })
	p.AutoApprove("ada", 0)
	rt := p.IssueRefreshToken("margaret", "cli", []string{"openid", "profile", "offline_access"})
	tests := []struct {
		name string
		make func(store auth.Store) (auth.AuthenticationHandler, error)
		want string
	}{
		{"refresh token", func(store auth.Store) (auth.AuthenticationHandler, error) {
			return NewRefreshToken(RefreshTokenConfig{OAuthConfig: OAuthConfig{Endpoints: Endpoints{Issuer: p.Issuer()}, ClientID: "cli", Store: store},
				RefreshToken: auth.NewSecret(rt)})
		}, "margaret"},
		{"device code, unpinned", func(store auth.Store) (auth.AuthenticationHandler, error) {
			return NewDeviceCode(DeviceCodeConfig{OAuthConfig: OAuthConfig{Endpoints: Endpoints{Issuer: p.Issuer()}, ClientID: "cli", Store: store},
				Prompt: func(context.Context, DevicePrompt) error { return nil }})
		}, "ada"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &auth.MemoryStore{}
			first, err := tt.make(store)
			if err != nil {
				t.Fatal(err)
			}
			if err := first.Authenticate(testCtx(t, 10*time.Second)); err != nil {
				t.Fatal(err)
			}
			first.(interface{ Close() error }).Close()
			before := p.Requests(authtest.EndpointToken)

			second, err := tt.make(store)
			if err != nil {
				t.Fatal(err)
			}
			defer second.(interface{ Close() error }).Close()
			if _, err := second.HubRequestHeaders(testCtx(t, 10*time.Second)); err != nil {
				t.Fatal(err)
			}
			if got := second.Username(); got != tt.want {
				t.Errorf("Username() after a store hit = %q, want %q", got, tt.want)
			}
			if after := p.Requests(authtest.EndpointToken); after != before {
				t.Errorf("the second handler asked for a token (%d requests): the store was not used", after-before)
			}
		})
	}
}
