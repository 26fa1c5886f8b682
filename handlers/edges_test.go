package handlers

import (
	"context"
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
