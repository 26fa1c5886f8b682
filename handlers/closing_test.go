package handlers

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/authkit-go/authkit/auth"
)

// hangingServer answers nothing until the request is cancelled; it counts
// the requests it received.
func hangingServer(t *testing.T) (*httptest.Server, chan struct{}) {
	t.Helper()
	got := make(chan struct{}, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- struct{}{}
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

// ourGoroutines returns the stacks of the goroutines running authkit code,
// test goroutines left out (net/http's idle connections are not ours).
func ourGoroutines() []string {
	buf := make([]byte, 1<<20)
	var ours []string
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "github.com/authkit-go/authkit/") && !strings.Contains(g, "testing.tRunner") {
			ours = append(ours, g)
		}
	}
	return ours
}

// settleGoroutines waits until no goroutine of authkit runs, and returns
// the stacks of those that still do.
func settleGoroutines() []string {
	deadline := time.Now().Add(5 * time.Second)
	g := ourGoroutines()
	for len(g) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // waiting for goroutines to end, not for an expiry
		g = ourGoroutines()
	}
	return g
}

// A key set that never answers bounds no caller beyond its ctx, and Close
// ends the fetch: no goroutine outlives the handler.
func TestNeverAnsweringKeySetBoundedByCallerAndClose(t *testing.T) {
	p := newProvider(t, nil)
	keys, keyRequests := hangingServer(t)
	scopes := []string{"openid", "offline_access"}
	store := &auth.MemoryStore{}
	h, err := NewDeviceCode(DeviceCodeConfig{OAuthConfig: OAuthConfig{
		Endpoints: Endpoints{Issuer: p.Issuer(), TokenURL: p.TokenURL(), JWKSURL: keys.URL, DeviceAuthorizationURL: p.DeviceAuthorizationURL()},
		ClientID:  "cli", Store: store, Scopes: scopes,
	}, NoBrowser: true, Prompt: func(context.Context, DevicePrompt) error { return errors.New("no prompt in this test") }})
	if err != nil {
		t.Fatal(err)
	}
	// A stored login whose ID token must be checked: the check fetches the keys.
	stored := &auth.Token{AccessToken: auth.NewSecret("at"), RefreshToken: auth.NewSecret(p.IssueRefreshToken("ada", "cli", scopes)),
		IDToken: auth.NewSecret(p.IssueIDToken("ada", "cli")), Expiry: time.Now().Add(time.Hour)}
	if err := store.Save(context.Background(), h.core.storeKey(""), stored); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = h.Authenticate(ctx)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Authenticate with a 500 ms ctx returned after %v", took)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Authenticate = %v, want the caller's deadline", err)
	}
	select {
	case <-keyRequests: // the fetch may reach the server after the caller gave up
	case <-time.After(10 * time.Second):
		t.Error("the key set was never asked")
	}
	h.Close()
	if left := settleGoroutines(); len(left) > 0 {
		t.Errorf("%d goroutines of authkit outlive Close:\n%s", len(left), strings.Join(left, "\n\n"))
	}
}

// A discovery document that never comes bounds no caller beyond its ctx,
// and Close ends the fetch.
func TestNeverAnsweringDiscoveryBoundedByCallerAndClose(t *testing.T) {
	idp, requests := hangingServer(t)
	h, err := NewClientCredentials(ClientCredentialsConfig{OAuthConfig: OAuthConfig{
		Endpoints: Endpoints{Issuer: idp.URL}, ClientID: "svc", ClientSecret: auth.NewSecret("s"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := h.Authenticate(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Authenticate = %v, want the caller's deadline", err)
	}
	<-requests
	h.Close()
	if left := settleGoroutines(); len(left) > 0 {
		t.Errorf("%d goroutines of authkit outlive Close:\n%s", len(left), strings.Join(left, "\n\n"))
	}
}
