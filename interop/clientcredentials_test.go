package interop

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/handlers"
)

// introspect asks oidc-provider whether token is active
// (https://www.rfc-editor.org/rfc/rfc7662), as the client that holds it.
func introspect(t testing.TB, iss, token, id, secret string) map[string]any {
	t.Helper()
	var md struct {
		IntrospectionEndpoint string `json:"introspection_endpoint"`
	}
	getJSON(t, iss+"/.well-known/openid-configuration", &md)
	if md.IntrospectionEndpoint == "" {
		t.Fatalf("no introspection_endpoint at %s", iss)
	}
	var out map[string]any
	a := postFormRaw(t, md.IntrospectionEndpoint, url.Values{"token": {token}}, id, secret, &out)
	if a != 200 {
		t.Fatalf("introspection: HTTP %d %v", a, out)
	}
	return out
}

// bearer returns the token of h's hub Authorization header.
func bearer(t testing.TB, h auth.AuthenticationHandler) string {
	t.Helper()
	hdr, err := h.HubRequestHeaders(testContext(t))
	mustf(t, err, "HubRequestHeaders")
	v := hdr.Get("Authorization")
	tok, ok := strings.CutPrefix(v, "Bearer ")
	if !ok || tok == "" {
		t.Fatalf("Authorization = %q, want Bearer <token>", redact(v))
	}
	return tok
}

func TestOIDCClientCredentials(t *testing.T) {
	iss := oidcIssuer(t)
	tests := []struct {
		name       string
		id, secret string
		style      handlers.AuthStyle
	}{
		{"client_secret_basic", oidcCCID, oidcCCSecret, handlers.AuthStyleDefault},
		{"client_secret_post", oidcCCPostID, oidcCCPostSecret, handlers.AuthStylePost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := handlers.NewClientCredentials(handlers.ClientCredentialsConfig{OAuthConfig: handlers.OAuthConfig{
				Endpoints:    handlers.Endpoints{Issuer: iss},
				ClientID:     tt.id,
				ClientSecret: auth.NewSecret(tt.secret),
				AuthStyle:    tt.style,
				Scopes:       []string{"api:read"},
			}})
			mustf(t, err, "NewClientCredentials")
			t.Cleanup(func() { _ = h.Close() })

			ctx := testContext(t)
			mustf(t, h.Authenticate(ctx), "Authenticate")
			if !h.Authenticated() {
				t.Errorf("Authenticated() = false after Authenticate")
			}
			tok := bearer(t, h)
			// The access manager and the message service get the same token.
			am, err := h.AccessManagerRequestHeaders(ctx)
			mustf(t, err, "AccessManagerRequestHeaders")
			if am.Get("Authorization") != "Bearer "+tok {
				t.Errorf("access manager header differs from the hub's")
			}
			md, err := h.MessageServiceMetadata(ctx)
			mustf(t, err, "MessageServiceMetadata")
			if md["authorization"] != "Bearer "+tok {
				t.Errorf("message service metadata = %q, want the hub's bearer", redact(md["authorization"]))
			}
			// The provider knows the token, for this client and scope.
			in := introspect(t, iss, tok, tt.id, tt.secret)
			if in["active"] != true || in["client_id"] != tt.id || in["scope"] != "api:read" {
				t.Errorf("introspection = %v, want active, client %s, scope api:read", in, tt.id)
			}
			// A rejected token is replaced by a new grant.
			h.Invalidate(auth.ServiceHub, "Bearer "+tok)
			if tok2 := bearer(t, h); tok2 == tok {
				t.Errorf("same token after Invalidate")
			}
		})
	}
}

func TestOIDCClientCredentialsWrongSecret(t *testing.T) {
	iss := oidcIssuer(t)
	h, err := handlers.NewClientCredentials(handlers.ClientCredentialsConfig{OAuthConfig: handlers.OAuthConfig{
		Endpoints:    handlers.Endpoints{Issuer: iss},
		ClientID:     oidcCCID,
		ClientSecret: auth.NewSecret("wrong"),
	}})
	mustf(t, err, "NewClientCredentials")
	t.Cleanup(func() { _ = h.Close() })
	err = h.Authenticate(testContext(t))
	var oe *auth.OAuthError
	if !errors.As(err, &oe) || oe.Code != "invalid_client" || oe.StatusCode != 401 {
		t.Fatalf("Authenticate with a wrong secret = %v, want an OAuthError invalid_client (HTTP 401)", err)
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Errorf("error shows the secret: %v", err)
	}
}
