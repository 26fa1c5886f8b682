package handlers

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/authtest"
)

// uaRecorder records the User-Agent of each request by path.
type uaRecorder struct {
	mu   sync.Mutex
	seen map[string]string
}

func (r *uaRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.seen[req.URL.Path] = req.Header.Get("User-Agent")
	r.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

// TestUserAgent: every request to the provider — discovery, JWKS, token,
// revocation — names the product, authkit's by default or the SDK's own.
func TestUserAgent(t *testing.T) {
	for _, tt := range []struct{ set, want string }{{"", auth.DefaultUserAgent}, {"mysdk/1.2", "mysdk/1.2"}} {
		t.Run(tt.want, func(t *testing.T) {
			p := newProvider(t, nil)
			rec := &uaRecorder{seen: map[string]string{}}
			h, err := NewRefreshToken(RefreshTokenConfig{
				OAuthConfig: OAuthConfig{Endpoints: Endpoints{Issuer: p.Issuer()}, ClientID: "cli",
					HTTPClient: &http.Client{Transport: rec}, UserAgent: tt.set},
				RefreshToken: auth.NewSecret(p.IssueRefreshToken("margaret", "cli", []string{"openid", "offline_access"})),
			})
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			ctx := testCtx(t, 10*time.Second)
			if err := h.Authenticate(ctx); err != nil {
				t.Fatal(err)
			}
			if err := h.Logout(ctx); err != nil {
				t.Fatal(err)
			}
			for _, path := range []string{authtest.EndpointDiscovery, authtest.EndpointKeys, authtest.EndpointToken, authtest.EndpointRevoke} {
				if got, ok := rec.seen[path]; !ok || got != tt.want {
					t.Errorf("%s: User-Agent %q (sent: %v), want %q", path, got, ok, tt.want)
				}
			}
		})
	}
	if _, err := NewClientCredentials(ClientCredentialsConfig{OAuthConfig{Endpoints: Endpoints{TokenURL: "https://idp.example/token"},
		ClientID: "svc", ClientSecret: auth.NewSecret("s"), UserAgent: "bad\r\nX-Injected: 1"}}); err == nil {
		t.Error("a User-Agent with a line break was accepted")
	}
}
