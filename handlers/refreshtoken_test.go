package handlers

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/authtest"
)

func TestRefreshToken(t *testing.T) {
	clk := authtest.NewClock(time.Time{})
	p := newProvider(t, clk)
	scopes := []string{"openid", "offline_access"}
	newHandler := func(t *testing.T, rt string, store auth.Store) *RefreshToken {
		t.Helper()
		h, err := NewRefreshToken(RefreshTokenConfig{OAuthConfig: OAuthConfig{
			Endpoints: Endpoints{Issuer: p.Issuer()}, ClientID: "cli", Clock: clk, Store: store, Scopes: scopes,
		}, RefreshToken: auth.NewSecret(rt)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		return h
	}
	ctx := context.Background()

	t.Run("rotates, persists, learns the user", func(t *testing.T) {
		store := &auth.MemoryStore{}
		rt := p.IssueRefreshToken("ada", "cli", scopes)
		h := newHandler(t, rt, store)
		if err := h.Authenticate(ctx); err != nil {
			t.Fatal(err)
		}
		cur := h.engine.Current()
		if cur.RefreshToken.Reveal() == rt || h.Username() != "ada" {
			t.Errorf("refresh token not rotated or user %q", h.Username())
		}
		saved, _ := store.Load(ctx, h.core.storeKey(""))
		if saved == nil || saved.RefreshToken.Reveal() != cur.RefreshToken.Reveal() {
			t.Error("rotated refresh token not persisted")
		}
	})

	t.Run("spent refresh token: ErrLoginRequired, and never sent again", func(t *testing.T) {
		rt := p.IssueRefreshToken("ada", "cli", scopes)
		first := newHandler(t, rt, nil)
		if err := first.Authenticate(ctx); err != nil {
			t.Fatal(err)
		}
		before := p.GrantRequests(authtest.GrantRefreshToken)
		second := newHandler(t, rt, nil) // the same, now spent, token
		err := second.Authenticate(ctx)
		if !errors.Is(err, auth.ErrLoginRequired) || !errors.Is(err, auth.ErrInvalidGrant) {
			t.Fatalf("err = %v", err)
		}
		clk.Advance(2 * time.Minute) // past the engine's backoff
		if _, err := second.HubRequestHeaders(ctx); !errors.Is(err, auth.ErrLoginRequired) {
			t.Fatalf("err = %v", err)
		}
		if n := p.GrantRequests(authtest.GrantRefreshToken) - before; n != 1 {
			t.Errorf("the rejected token was sent %d times, want 1", n)
		}
	})
}
