package auth_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/authkit-go/authkit/auth"
)

var secretToken = &auth.Token{
	AccessToken:   auth.NewSecret("access-SECRET-1"),
	TokenType:     "Bearer",
	RefreshToken:  auth.NewSecret("refresh-SECRET-2"),
	IDToken:       auth.NewSecret("id-SECRET-3"),
	Scope:         "openid offline_access",
	Expiry:        time.Date(2030, 1, 1, 1, 0, 0, 0, time.UTC),
	RefreshExpiry: time.Date(2030, 1, 2, 0, 0, 0, 0, time.UTC),
	Extra:         map[string]auth.Secret{"session_state": auth.NewSecret("extra-SECRET-4")},
}

func TestTokenNeverPrintsSecrets(t *testing.T) {
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("token", "tok", secretToken)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("token", "tok", secretToken)
	renderings := map[string]string{
		"%v":       fmt.Sprintf("%v", secretToken),
		"%+v":      fmt.Sprintf("%+v", secretToken),
		"%#v":      fmt.Sprintf("%#v", secretToken),
		"%s":       fmt.Sprintf("%s", secretToken),
		"%q":       fmt.Sprintf("%q", secretToken),
		"value %v": fmt.Sprintf("%v", *secretToken),
		"in struct %+v": fmt.Sprintf("%+v", struct {
			T *auth.Token
		}{secretToken}),
		"slog": logged.String(),
	}
	for name, s := range renderings {
		if strings.Contains(s, "SECRET") {
			t.Errorf("%s shows a secret: %s", name, s)
		}
	}
	if s := fmt.Sprintf("%+v", secretToken); !strings.Contains(s, "Scope:openid offline_access") || !strings.Contains(s, "[redacted]") ||
		!strings.Contains(s, "session_state") {
		t.Errorf("printing lost the non-secret facts: %s", s)
	}
}

// encoding/json never writes a token's secrets (the stores have a format
// of their own); decoding reads them, as a configuration file needs.
func TestTokenJSONNeverHoldsSecrets(t *testing.T) {
	b, err := json.Marshal(secretToken)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "SECRET") || !strings.Contains(string(b), `"access_token":"[redacted]"`) {
		t.Fatalf("JSON of a token: %s", b)
	}
	var got auth.Token
	if err := json.Unmarshal([]byte(`{"access_token":"at-1","refresh_token":"rt-1","extra":{"session_state":"s"}}`), &got); err != nil {
		t.Fatal(err)
	}
	if got.AccessToken.Reveal() != "at-1" || got.RefreshToken.Reveal() != "rt-1" || got.Extra["session_state"].Reveal() != "s" {
		t.Fatalf("decoded %+v", got)
	}
	b, _ = json.Marshal(&auth.Token{AccessToken: auth.NewSecret("a")})
	if string(b) != `{"access_token":"[redacted]"}` {
		t.Fatalf("zero fields not omitted: %s", b)
	}
}

func TestTokenValidity(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		tok    *auth.Token
		margin time.Duration
		valid  bool
		usable bool
	}{
		{"nil", nil, 0, false, false},
		{"empty", &auth.Token{}, 0, false, false},
		{"no expiry", &auth.Token{AccessToken: auth.NewSecret("a")}, time.Hour, true, false},
		{"valid beyond margin", &auth.Token{AccessToken: auth.NewSecret("a"), Expiry: now.Add(time.Minute)}, 59 * time.Second, true, false},
		{"inside margin", &auth.Token{AccessToken: auth.NewSecret("a"), Expiry: now.Add(time.Minute)}, time.Minute, false, false},
		{"expired", &auth.Token{AccessToken: auth.NewSecret("a"), Expiry: now.Add(-time.Second)}, 0, false, false},
		{"refresh without expiry", &auth.Token{RefreshToken: auth.NewSecret("r")}, 0, false, true},
		{"refresh expired", &auth.Token{RefreshToken: auth.NewSecret("r"), RefreshExpiry: now}, 0, false, false},
		{"refresh valid", &auth.Token{RefreshToken: auth.NewSecret("r"), RefreshExpiry: now.Add(time.Second)}, 0, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.tok.ValidAt(now, tt.margin); got != tt.valid {
				t.Errorf("ValidAt = %v, want %v", got, tt.valid)
			}
			if got := tt.tok.RefreshUsableAt(now); got != tt.usable {
				t.Errorf("RefreshUsableAt = %v, want %v", got, tt.usable)
			}
		})
	}
}

func TestWireFormats(t *testing.T) {
	tok := &auth.Token{AccessToken: auth.NewSecret("t0k")}
	tests := []struct {
		name      string
		wire      auth.Wire
		hub, am   [2]string
		mdKey, md string
	}{
		{"defaults", auth.Wire{}, [2]string{"Authorization", "Bearer t0k"}, [2]string{"Authorization", "Bearer t0k"}, "authorization", "Bearer t0k"},
		{"token metadata", auth.Wire{MessageService: auth.Field{Name: "token"}},
			[2]string{"Authorization", "Bearer t0k"}, [2]string{"Authorization", "Bearer t0k"}, "token", "t0k"},
		{"custom headers", auth.Wire{Hub: auth.Field{Name: "x-hub-token"}, AccessManager: auth.Field{Name: "Authorization", Prefix: "JWT "}},
			[2]string{"X-Hub-Token", "t0k"}, [2]string{"Authorization", "JWT t0k"}, "authorization", "Bearer t0k"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.wire.Validate(); err != nil {
				t.Fatal(err)
			}
			c, err := tt.wire.Bearer(tok)
			if err != nil {
				t.Fatal(err)
			}
			if h := c.Hub(); len(h) != 1 || h.Get(tt.hub[0]) != tt.hub[1] {
				t.Errorf("hub = %v, want %v", h, tt.hub)
			}
			if h := c.AccessManager(); len(h) != 1 || h.Get(tt.am[0]) != tt.am[1] {
				t.Errorf("access manager = %v, want %v", h, tt.am)
			}
			if m := c.MessageService(); len(m) != 1 || m[tt.mdKey] != tt.md {
				t.Errorf("metadata = %v, want %s: %s", m, tt.mdKey, tt.md)
			}
			// Prepared once: every later call hands out the same map.
			if h1, h2 := c.Hub(), c.Hub(); reflect.ValueOf(h1).UnsafePointer() != reflect.ValueOf(h2).UnsafePointer() {
				t.Error("Hub() prepared a new map on the second call")
			}
		})
	}
}

func TestOAuthErrorMapsToSentinels(t *testing.T) {
	tests := []struct {
		code string
		is   error
	}{
		{"invalid_grant", auth.ErrInvalidGrant},
		{"access_denied", auth.ErrAccessDenied},
		{"expired_token", auth.ErrDeviceCodeExpired},
		{"invalid_client", auth.ErrInvalidClient},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			err := fmt.Errorf("refresh: %w", &auth.OAuthError{Code: tt.code, Description: "d", StatusCode: 400})
			if !errors.Is(err, tt.is) {
				t.Fatalf("%v is not %v", err, tt.is)
			}
			if errors.Is(err, auth.ErrLoginRequired) {
				t.Fatal("matches an unrelated sentinel")
			}
		})
	}
	e := &auth.OAuthError{Code: "invalid_client", Description: "bad secret", URI: "https://x", StatusCode: 401}
	if got := e.Error(); got != "oauth2: invalid_client: bad secret (HTTP 401)" {
		t.Fatalf("Error() = %q", got)
	}
	r := &auth.ResponseError{StatusCode: 502, ContentType: "text/html", Reason: "body is not JSON", Excerpt: "<html>"}
	if got := r.Error(); got != `auth: unusable response (HTTP 502, text/html): body is not JSON: "<html>"` {
		t.Fatalf("Error() = %q", got)
	}
}

func TestNilTokenPrints(t *testing.T) {
	var tok *auth.Token
	if s := fmt.Sprintf("%v", tok); s != "<nil>" {
		t.Fatalf("nil token prints %q", s)
	}
}
