package authtest

import (
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

func TestDialects(t *testing.T) {
	tests := []struct {
		name            string
		dialect         Dialect
		tokenType       string
		spentStatus     int
		spentCode       string
		spentDesc       string
		chainRevoked    bool
		badPassStatus   int
		badPassCode     string
		preferredInIDTk bool
	}{
		{"standard", DialectStandard, "Bearer", 400, "invalid_grant", descRefreshReused, true, 400, "invalid_grant", true},
		{"Dex", DialectDex, "bearer", 400, "invalid_request", descDexRefreshClaimed, false, 401, "access_denied", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, clock := newTestProvider(t, func(c *ProviderConfig) { c.Dialect = tt.dialect })
			login := post(t, p, EndpointToken, form("grant_type", "password", "client_id", "cli",
				"username", "ada", "password", "lovelace", "scope", "openid offline_access"))
			if login.status != 200 || login.str("token_type") != tt.tokenType {
				t.Fatalf("login: %d %s", login.status, login.raw)
			}
			claims := jwt.MapClaims{}
			if _, err := jwt.ParseWithClaims(login.str("id_token"), claims, p.Keyfunc, jwt.WithTimeFunc(clock.Now)); err != nil {
				t.Fatal(err)
			}
			if _, ok := claims["preferred_username"]; ok != tt.preferredInIDTk {
				t.Errorf("preferred_username in the ID token: %v, want %v", ok, tt.preferredInIDTk)
			}
			if claims["email"] != "ada@example.com" {
				t.Errorf("email claim = %v", claims["email"])
			}

			rt := login.str("refresh_token")
			next := post(t, p, EndpointToken, form("grant_type", "refresh_token", "client_id", "cli", "refresh_token", rt))
			if next.status != 200 {
				t.Fatalf("refresh: %d %s", next.status, next.raw)
			}
			wantError(t, post(t, p, EndpointToken, form("grant_type", "refresh_token", "client_id", "cli", "refresh_token", rt)),
				tt.spentStatus, tt.spentCode, tt.spentDesc)
			newest := post(t, p, EndpointToken, form("grant_type", "refresh_token", "client_id", "cli", "refresh_token", next.str("refresh_token")))
			if revoked := newest.status != 200; revoked != tt.chainRevoked {
				t.Errorf("newest refresh token after the reuse: %d %s; revoked %v, want %v", newest.status, newest.raw, revoked, tt.chainRevoked)
			}

			wantError(t, post(t, p, EndpointToken, form("grant_type", "password", "client_id", "cli",
				"username", "ada", "password", "wrong")), tt.badPassStatus, tt.badPassCode, "")
		})
	}
}
