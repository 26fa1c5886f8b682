package handlers

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/authkit-go/authkit/auth"
)

// TestSilentProviderIsNamed: a provider that never answers makes
// Authenticate fail at the caller's deadline with an error that names the
// handler and the endpoint it waits for, and still matches the deadline.
func TestSilentProviderIsNamed(t *testing.T) {
	p := newProvider(t, nil)
	p.SetLatency(time.Minute)
	tests := []struct {
		name string
		make func() (interface {
			Authenticate(context.Context) error
			Close() error
		}, error)
		want string
	}{
		{"client credentials", func() (interface {
			Authenticate(context.Context) error
			Close() error
		}, error) {
			return NewClientCredentials(ClientCredentialsConfig{OAuthConfig{Endpoints: Endpoints{TokenURL: p.TokenURL()},
				ClientID: "svc", ClientSecret: auth.NewSecret(svcSecret)}})
		}, "handlers: ClientCredentials: no token from " + p.TokenURL()},
		{"password", func() (interface {
			Authenticate(context.Context) error
			Close() error
		}, error) {
			return NewPassword(PasswordConfig{OAuthConfig: OAuthConfig{Endpoints: Endpoints{TokenURL: p.TokenURL()}, ClientID: "cli"},
				Username: "bob", Password: auth.NewSecret("bob-pw")})
		}, "handlers: Password: no token from " + p.TokenURL()},
		{"refresh token, discovering", func() (interface {
			Authenticate(context.Context) error
			Close() error
		}, error) {
			return NewRefreshToken(RefreshTokenConfig{OAuthConfig: OAuthConfig{Endpoints: Endpoints{Issuer: p.Issuer()}, ClientID: "cli"},
				RefreshToken: auth.NewSecret("rt")})
		}, "handlers: RefreshToken: no token from " + p.Issuer()},
	}
	tests = append(tests, struct {
		name string
		make func() (interface {
			Authenticate(context.Context) error
			Close() error
		}, error)
		want string
	}{"a JWT callback that never returns", func() (interface {
		Authenticate(context.Context) error
		Close() error
	}, error) {
		return NewExternallyManagedJWT(ExternallyManagedJWTConfig{Callback: func(ctx context.Context) (string, time.Time, error) {
			<-ctx.Done()
			return "", time.Time{}, ctx.Err()
		}})
	}, "handlers: ExternallyManagedJWT: no JWT from the callback before the caller gave up"})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := tt.make()
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			err = h.Authenticate(ctx)
			if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want the deadline and %q", err, tt.want)
			}
		})
	}
}
