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

// Item 1 of the engine v2 issue: the provider rotated the refresh token,
// then the ID token could not be verified (the JWKS answered 500 once).
// The rotated token must be kept and saved, so that the next refresh does
// not present the spent one and get the whole login revoked.
func TestRefreshKeepsRotatedTokenWhenIDTokenCheckFails(t *testing.T) {
	p := newProvider(t, nil)
	scopes := []string{"openid", "offline_access"}
	store := &auth.MemoryStore{}
	h, err := NewDeviceCode(DeviceCodeConfig{OAuthConfig: OAuthConfig{
		Endpoints: Endpoints{Issuer: p.Issuer()}, ClientID: "cli", Store: store, Scopes: scopes,
	}, Prompt: func(context.Context, DevicePrompt) error { t.Error("prompted"); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	seed := &auth.Token{AccessToken: auth.NewSecret("expired"), RefreshToken: auth.NewSecret(p.IssueRefreshToken("ada", "cli", scopes)), Expiry: time.Now().Add(-time.Minute)}
	if err := store.Save(context.Background(), h.core.storeKey(""), seed); err != nil {
		t.Fatal(err)
	}
	p.FailNextAt(authtest.EndpointKeys, 1, 500, "")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	first := h.Authenticate(ctx)
	if first != nil {
		// Allowed to fail once (the keys were unavailable); the next try
		// must refresh with the rotated token, not the spent seed.
		if err := h.Authenticate(ctx); err != nil {
			t.Errorf("second Authenticate: %v", err)
		}
	}
	if n := p.ReusedRefreshTokens(); n != 0 {
		t.Fatalf("the provider revoked %d login(s) for refresh token reuse: the rotated token was dropped", n)
	}
	saved, _ := store.Load(ctx, h.core.storeKey(""))
	if saved == nil || saved.RefreshToken.Reveal() == seed.RefreshToken.Reveal() {
		t.Errorf("store holds %v; want the rotated refresh token", saved)
	}
	if h.Username() != "ada" {
		t.Errorf("Username() = %q, want ada", h.Username())
	}
}

// A pinned username needs a verified ID token: a login whose answer has
// none is refused, not taken on trust.
func TestPinnedUsernameNeedsAnIDToken(t *testing.T) {
	p := newProvider(t, nil)
	noOpenID := []string{"offline_access"} // the provider then issues no ID token
	h, err := NewRefreshToken(RefreshTokenConfig{OAuthConfig: OAuthConfig{
		Endpoints: Endpoints{Issuer: p.Issuer()}, ClientID: "cli", Scopes: noOpenID,
	}, RefreshToken: auth.NewSecret(p.IssueRefreshToken("ada", "cli", noOpenID)), Username: "ada"})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Authenticate(ctx); !errors.Is(err, ErrInvalidIDToken) {
		t.Fatalf("Authenticate = %v, want ErrInvalidIDToken: nothing proves the user is ada", err)
	}
	if h.engine.Valid() {
		t.Error("the unverified login is served")
	}
}

// The device prompt prints what the provider sent on a terminal: escape
// sequences, control and bidi characters in it are neutralised.
func TestDefaultPromptNeutralisesTerminalControls(t *testing.T) {
	var out strings.Builder
	prompt := DefaultPrompt(&out, nil)
	err := prompt(context.Background(), DevicePrompt{
		VerificationURI:         "https://idp.example/device\x1b]8;;https://evil.example\x07",
		VerificationURIComplete: "https://idp.example/device?code=ABCD\u202egnp.exe",
		UserCode:                "ABCD\x1b[2J-EFGH\r",
		ExpiresIn:               time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"\x1b", "\x07", "\u202e", "\r"} {
		if strings.Contains(out.String(), bad) {
			t.Errorf("the prompt prints %q: %q", bad, out.String())
		}
	}
	if !strings.Contains(out.String(), "ABCD") {
		t.Errorf("the prompt lost the code: %q", out.String())
	}
}
