package handlers

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/authtest"
)

// loggedIn returns a password handler logged in as bob at p, on store.
func loggedIn(t *testing.T, p *authtest.Provider, store auth.Store, mod func(*OAuthConfig)) (*Password, *auth.Token) {
	t.Helper()
	cfg := OAuthConfig{Endpoints: Endpoints{Issuer: p.Issuer()}, ClientID: "cli", Store: store}
	if mod != nil {
		mod(&cfg)
	}
	h, err := NewPassword(PasswordConfig{OAuthConfig: cfg, Username: "bob", Password: auth.NewSecret("bob-pw")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	ctx := testCtx(t, 10*time.Second)
	if err := h.Authenticate(ctx); err != nil {
		t.Fatal(err)
	}
	tok, err := h.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return h, tok
}

// refreshRefused reports whether p refuses rt at its token endpoint.
func refreshRefused(t *testing.T, p *authtest.Provider, rt string) bool {
	t.Helper()
	resp, err := p.Client().PostForm(p.TokenURL(), url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"cli"}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode == http.StatusBadRequest && strings.Contains(string(body), "invalid_grant")
}

// TestLogoutRevokes: Logout revokes the refresh token, then the access
// token, at the discovered revocation endpoint, and deletes the stored
// login; the provider refuses both tokens afterwards.
func TestLogoutRevokes(t *testing.T) {
	p := newProvider(t, nil)
	store := &auth.MemoryStore{}
	h, tok := loggedIn(t, p, store, nil)
	if err := h.Logout(testCtx(t, 10*time.Second)); err != nil {
		t.Fatalf("Logout: %v", err)
	}
	if n := p.Revocations(); n != 2 {
		t.Errorf("%d revocation requests, want 2 (refresh token, then access token)", n)
	}
	if !refreshRefused(t, p, tok.RefreshToken.Reveal()) {
		t.Error("the provider still accepts the refresh token after Logout")
	}
	if !p.AccessTokenRevoked(tok.AccessToken.Reveal()) {
		t.Error("the access token was not revoked")
	}
	if h.Authenticated() {
		t.Error("still authenticated after Logout")
	}
	if got, _ := store.Load(context.Background(), h.core.storeKey("bob")); got != nil {
		t.Error("the login is still stored")
	}
	if _, err := h.HubRequestHeaders(testCtx(t, 10*time.Second)); err != nil {
		t.Errorf("a password handler logs in again on the next use: %v", err)
	}
}

// TestLogoutRevokesWhatAnotherProcessRotated: another process sharing the
// store rotated the refresh token; Logout revokes the stored one too.
func TestLogoutRevokesWhatAnotherProcessRotated(t *testing.T) {
	p := newProvider(t, nil)
	store := &auth.MemoryStore{}
	first, old := loggedIn(t, p, store, nil)
	second, _ := loggedIn(t, p, store, nil) // starts from the stored login
	second.Invalidate(auth.ServiceHub, "")  // the hub refused its token: it refreshes, rotating
	rotated, err := second.Token(testCtx(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if rotated.RefreshToken.Equal(old.RefreshToken) {
		t.Fatal("the provider did not rotate the refresh token")
	}
	if err := first.Logout(testCtx(t, 10*time.Second)); err != nil {
		t.Fatalf("Logout: %v", err)
	}
	if !refreshRefused(t, p, rotated.RefreshToken.Reveal()) {
		t.Error("the rotated refresh token in the store survived the logout")
	}
}

// TestLogoutWhenRevocationFails: the provider's revocation endpoint fails
// (or there is none); the local logout happens anyway and the error says
// the provider may still accept the tokens, without carrying them.
func TestLogoutWhenRevocationFails(t *testing.T) {
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"invalid_request","error_description":"cannot revoke `+string(body)+`"}`)
	}))
	defer echo.Close()
	tests := []struct {
		name string
		mod  func(*OAuthConfig)
		want string
	}{
		{"provider error echoing the token", func(c *OAuthConfig) { c.RevocationURL = echo.URL }, "invalid_request"},
		{"no revocation endpoint", func(c *OAuthConfig) { c.Issuer, c.TokenURL = "", "TOKEN" }, "RevocationURL or Issuer is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProvider(t, nil)
			store := &auth.MemoryStore{}
			mod := tt.mod
			h, tok := loggedIn(t, p, store, func(c *OAuthConfig) {
				mod(c)
				if c.TokenURL == "TOKEN" {
					c.TokenURL = p.TokenURL()
				}
			})
			err := h.Logout(testCtx(t, 10*time.Second))
			if !errors.Is(err, auth.ErrNotRevoked) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Logout: %v, want auth.ErrNotRevoked and %q", err, tt.want)
			}
			for _, secret := range []string{tok.AccessToken.Reveal(), tok.RefreshToken.Reveal()} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("the error carries a token: %v", err)
				}
			}
			if h.Authenticated() {
				t.Error("still authenticated")
			}
			if got, _ := store.Load(context.Background(), h.core.storeKey("bob")); got != nil {
				t.Error("the login is still stored")
			}
		})
	}
}

// deviceLogin logs user in with a device code on store, pinned to pin.
func deviceLogin(t *testing.T, p *authtest.Provider, store auth.Store, pin, user string) (*DeviceCode, *auth.Token) {
	t.Helper()
	p.AutoApprove(user, 0)
	h, err := NewDeviceCode(DeviceCodeConfig{OAuthConfig: OAuthConfig{Endpoints: Endpoints{Issuer: p.Issuer()}, ClientID: "cli", Store: store},
		Username: pin, Prompt: func(context.Context, DevicePrompt) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	ctx := testCtx(t, 20*time.Second)
	if err := h.Authenticate(ctx); err != nil {
		t.Fatal(err)
	}
	tok, err := h.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return h, tok
}

// TestLogoutEndsBothEntriesOfAUser: a pinned login (Username set) and an
// unpinned one of the same user are two store entries; Logout of either
// handler ends both, after checking that the unpinned entry's verified ID
// token names the pinned user. Another user's entry is left alone.
func TestLogoutEndsBothEntriesOfAUser(t *testing.T) {
	for _, tt := range []struct {
		name             string
		otherUser        string // the user of the unpinned entry
		logoutPinned     bool
		wantOtherRevoked bool
	}{
		{"pinned logout ends the unpinned login of the same user", "ada", true, true},
		{"unpinned logout ends the pinned login of its user", "ada", false, true},
		{"pinned logout leaves another user's unpinned login", "bob", true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := newProvider(t, nil, func(pc *authtest.ProviderConfig) { pc.DeviceInterval = time.Second })
			store := &auth.MemoryStore{}
			pinned, _ := deviceLogin(t, p, store, "ada", "ada")
			unpinned, other := deviceLogin(t, p, store, "", tt.otherUser)
			if !tt.logoutPinned {
				other, _ = pinned.Token(testCtx(t, 10*time.Second))
			}
			h := unpinned
			if tt.logoutPinned {
				h = pinned
			}
			if err := h.Logout(testCtx(t, 10*time.Second)); err != nil {
				t.Fatalf("Logout: %v", err)
			}
			if got := refreshRefused(t, p, other.RefreshToken.Reveal()); got != tt.wantOtherRevoked {
				t.Errorf("the other entry's refresh token refused = %v, want %v", got, tt.wantOtherRevoked)
			}
			otherKey := pinned.core.storeKey("")
			if !tt.logoutPinned {
				otherKey = pinned.core.storeKey("ada")
			}
			if got, _ := store.Load(context.Background(), otherKey); (got == nil) != tt.wantOtherRevoked {
				t.Errorf("the other entry stored = %v, want removed %v", got != nil, tt.wantOtherRevoked)
			}
		})
	}
}

// TestLogoutEndsTheOtherEntryWithAnExpiredIDToken: the unpinned entry's ID
// token expired long before the logout (they live minutes, logins weeks);
// its signature, issuer and audience still prove whose login it is.
func TestLogoutEndsTheOtherEntryWithAnExpiredIDToken(t *testing.T) {
	store := &auth.MemoryStore{}
	unpinned := newBrowserSetup(t, func(c *BrowserLoginConfig) { c.Store = store },
		func(pc *authtest.ProviderConfig) {
			pc.IDTokenLifetime, pc.RefreshTokenLifetime = time.Minute, 30*24*time.Hour
		})
	if err := unpinned.h.Authenticate(testCtx(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	other, err := unpinned.h.Token(testCtx(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	unpinned.h.Close()                   // that program has ended
	unpinned.clk.Advance(24 * time.Hour) // the ID token long expired; the refresh token lives 30 days
	pinned := newBrowserSetupOn(t, unpinned.clk, unpinned.p, func(c *BrowserLoginConfig) { c.Store, c.Username = store, "ada" })
	if err := pinned.h.Authenticate(testCtx(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := pinned.h.Logout(testCtx(t, 10*time.Second)); err != nil {
		t.Fatalf("Logout: %v", err)
	}
	if got, _ := store.Load(context.Background(), pinned.h.core.storeKey("")); got != nil {
		t.Error("the unpinned login of the same user is still stored")
	}
	if !refreshRefused(t, unpinned.p, other.RefreshToken.Reveal()) {
		t.Error("its refresh token still works")
	}
}
