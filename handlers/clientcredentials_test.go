package handlers

import (
	"context"
	"net/http"
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/authtest"
)

func TestClientCredentialsWireFormat(t *testing.T) {
	tests := []struct {
		name     string
		style    AuthStyle
		wantForm url.Values
		wantAuth string
	}{
		{"basic by default", AuthStyleDefault, url.Values{"grant_type": {"client_credentials"}, "scope": {"read write extra"}, "audience": {"hub-api", "msg-api"}, "resource": {"https://hub.example.com/"}, "tenant": {"t1"}}, authtest.AuthMethodBasic},
		{"post", AuthStylePost, url.Values{"grant_type": {"client_credentials"}, "scope": {"read write extra"}, "audience": {"hub-api", "msg-api"}, "resource": {"https://hub.example.com/"}, "tenant": {"t1"},
			"client_id": {"svc"}, "client_secret": {svcSecret}}, authtest.AuthMethodPost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := authtest.NewClock(time.Time{})
			p := newProvider(t, clk)
			rec := &recorder{clk: clk}
			h, err := NewClientCredentials(ClientCredentialsConfig{OAuthConfig{
				Endpoints: Endpoints{TokenURL: p.TokenURL()}, ClientID: "svc", ClientSecret: auth.NewSecret(svcSecret), AuthStyle: tt.style,
				Scopes: []string{"read", "write"}, ExtraScopes: []string{"extra", "read"}, Audiences: []string{"hub-api", "msg-api"},
				Resources: []string{"https://hub.example.com/"}, ExtraParams: url.Values{"tenant": {"t1"}},
				Clock: clk, HTTPClient: rec.client(),
			}})
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			if err := h.Authenticate(context.Background()); err != nil {
				t.Fatal(err)
			}
			reqs := rec.to(authtest.EndpointToken)
			if len(reqs) != 1 || !reflect.DeepEqual(reqs[0].form, tt.wantForm) {
				t.Errorf("form %v\nwant %v", reqs[0].form, tt.wantForm)
			}
			if got := p.LastRequest(authtest.EndpointToken).AuthMethod; got != tt.wantAuth {
				t.Errorf("auth method %q", got)
			}
			if h.engine.Current().RefreshToken.Reveal() != "" || h.Username() != "" {
				t.Error("a client credentials token carries a refresh token or a user")
			}
		})
	}
}

func TestClientCredentialsRerunsGrantBeforeExpiry(t *testing.T) {
	clk := authtest.NewClock(time.Time{})
	p := newProvider(t, clk)
	h, err := NewClientCredentials(ClientCredentialsConfig{OAuthConfig{
		Endpoints: Endpoints{Issuer: p.Issuer()}, ClientID: "svc", ClientSecret: auth.NewSecret(svcSecret), Clock: clk,
		Margin: auth.Margin{Min: 30 * time.Second, Max: 30 * time.Second},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ctx := context.Background()
	first, err := h.HubRequestHeaders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(authtest.DefaultAccessTokenLifetime - 30*time.Second) // the refresh point
	var second http.Header
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		// The background refresh runs on its own goroutine; no fake time passes here.
		if second, err = h.HubRequestHeaders(ctx); err != nil || second.Get("Authorization") != first.Get("Authorization") {
			break
		}
	}
	if err != nil || second.Get("Authorization") == first.Get("Authorization") {
		t.Fatalf("the token was not replaced before expiry (err %v)", err)
	}
	if !h.Authenticated() {
		t.Error("not authenticated")
	}
	if n := p.GrantRequests(authtest.GrantClientCredentials); n != 2 {
		t.Errorf("%d grants, want 2", n)
	}
	if n := p.GrantRequests(authtest.GrantRefreshToken); n != 0 {
		t.Errorf("%d refreshes, want 0", n)
	}
	if n := p.Requests(authtest.EndpointDiscovery); n != 1 {
		t.Errorf("%d discoveries, want 1", n)
	}
}
