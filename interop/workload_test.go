package interop

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/handlers"
)

// The environment interop/run.sh sets for the workload tests.
const (
	envOIDCClientKey     = "AUTHKIT_OIDC_CLIENT_KEY"
	envDexExchangeIssuer = "AUTHKIT_DEX_EXCHANGE_ISSUER"
	oidcPrivateKeyJWTID  = "authkit-pkjwt"
	dexExchangeID        = "authkit-exchange"
	dexExchangeSecret    = "authkit-exchange-secret"
	dexExchangeConnector = "upstream"
)

// TestOIDCPrivateKeyJWT: oidc-provider authenticates a client by an ES256
// private_key_jwt assertion and no secret, finding the key by the kid
// authkit puts in the header (the RFC 7638 thumbprint, which server.mjs
// computes on its own); it refuses a replayed assertion, so a second token
// request passing proves the assertion is new each time; a key it does
// not know is invalid_client.
func TestOIDCPrivateKeyJWT(t *testing.T) {
	t.Parallel()
	iss := oidcIssuer(t)
	path := os.Getenv(envOIDCClientKey)
	if path == "" {
		t.Skipf("%s is not set: run `bash interop/run.sh`", envOIDCClientKey)
	}
	pemBytes, err := os.ReadFile(path)
	mustf(t, err, "reading the client key")
	key, err := handlers.ParsePrivateKeyPEM(pemBytes)
	mustf(t, err, "ParsePrivateKeyPEM")
	src, err := handlers.NewPrivateKeyJWT(handlers.PrivateKeyJWTConfig{Key: key})
	mustf(t, err, "NewPrivateKeyJWT")
	d := discover(t, iss)
	rec := newRecorder(d.TokenEndpoint)
	h, err := handlers.NewClientCredentials(handlers.ClientCredentialsConfig{OAuthConfig: handlers.OAuthConfig{
		Endpoints: handlers.Endpoints{Issuer: iss}, ClientID: oidcPrivateKeyJWTID, ClientAssertion: src,
		Scopes: []string{"api:read"}, HTTPClient: rec.client(),
	}})
	mustf(t, err, "NewClientCredentials")
	defer h.Close()
	ctx := testContext(t)
	first := bearer(t, h)
	in := introspect(t, iss, first, oidcCCID, oidcCCSecret)
	if in["active"] != true || in["client_id"] != oidcPrivateKeyJWTID {
		t.Errorf("introspection = %v", in)
	}
	h.Invalidate(auth.ServiceHub, "Bearer "+first) // a new token request, with a new assertion
	if _, err := h.HubRequestHeaders(ctx); err != nil {
		t.Fatalf("second token request: %v (exchanges %v)", err, rec.exchanges())
	}
	if n := len(rec.exchanges()); n < 2 {
		t.Errorf("%d token requests, want 2", n)
	}

	// The same assertion twice: oidc-provider takes it once ("client
	// assertion tokens must only be used once"), which is why the handler
	// makes one per request.
	a, err := src.Assertion(ctx, handlers.AssertionRequest{ClientID: oidcPrivateKeyJWTID, Audience: d.TokenEndpoint, Now: time.Now()})
	mustf(t, err, "Assertion")
	for i, want := range []int{http.StatusOK, http.StatusUnauthorized} {
		resp, err := http.PostForm(d.TokenEndpoint, url.Values{"grant_type": {"client_credentials"}, "client_id": {oidcPrivateKeyJWTID},
			"client_assertion_type": {handlers.ClientAssertionType}, "client_assertion": {a.Reveal()}, "scope": {"api:read"}})
		mustf(t, err, "POST")
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("the same assertion, use %d: HTTP %d, want %d", i+1, resp.StatusCode, want)
		}
	}

	other, err := handlers.ParsePrivateKeyPEM(otherKeyPEM(t))
	mustf(t, err, "the other key")
	wrong, _ := handlers.NewPrivateKeyJWT(handlers.PrivateKeyJWTConfig{Key: other})
	h2, err := handlers.NewClientCredentials(handlers.ClientCredentialsConfig{OAuthConfig: handlers.OAuthConfig{
		Endpoints: handlers.Endpoints{Issuer: iss}, ClientID: oidcPrivateKeyJWTID, ClientAssertion: wrong, Scopes: []string{"api:read"}}})
	mustf(t, err, "NewClientCredentials")
	defer h2.Close()
	var oe *auth.OAuthError
	if err := h2.Authenticate(ctx); !errors.As(err, &oe) || oe.Code != "invalid_client" || auth.IsTransient(err) {
		t.Errorf("a key the provider does not know: %v, want a terminal invalid_client", err)
	}
}

// TestDexTokenExchange: an ID token oidc-provider issued (a device login of
// its public client) is exchanged at Dex (RFC 8693, through Dex's OIDC
// connector to oidc-provider) for Dex's own access token.
func TestDexTokenExchange(t *testing.T) {
	t.Parallel()
	upstream := oidcIssuer(t)
	iss := issuer(t, envDexExchangeIssuer)
	rec := newRecorder(discover(t, upstream).TokenEndpoint)
	login, _ := newOIDCDevice(t, upstream, oidcDevicePublicID, "", userLogin, rec)
	ctx := testContext(t)
	mustf(t, login.Authenticate(ctx), "the device login at oidc-provider")
	up, err := login.Token(ctx)
	mustf(t, err, "Token")
	idToken := up.IDToken
	if idToken.IsZero() {
		t.Fatal("oidc-provider sent no ID token")
	}
	xrec := newRecorder(discover(t, iss).TokenEndpoint)
	h, err := handlers.NewTokenExchange(handlers.TokenExchangeConfig{
		OAuthConfig: handlers.OAuthConfig{
			Endpoints: handlers.Endpoints{Issuer: iss}, ClientID: dexExchangeID, ClientSecret: auth.NewSecret(dexExchangeSecret),
			Scopes: []string{"openid"}, ExtraParams: map[string][]string{"connector_id": {dexExchangeConnector}},
			HTTPClient: xrec.client(),
		},
		SubjectToken:       handlers.JWTSourceFunc(func(_ context.Context) (auth.Secret, error) { return idToken, nil }),
		SubjectTokenType:   handlers.TokenTypeIDToken,
		RequestedTokenType: handlers.TokenTypeAccessToken,
	})
	mustf(t, err, "NewTokenExchange")
	defer h.Close()
	tok, err := h.Token(ctx)
	if err != nil {
		t.Fatalf("token exchange at Dex: %v (exchanges %v)", err, xrec.exchanges())
	}
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(tok.AccessToken.Reveal(), claims); err != nil {
		t.Fatalf("Dex's access token: %v", err)
	}
	if claims["iss"] != iss {
		t.Errorf("the exchanged token's iss = %v, want Dex's %s", claims["iss"], iss)
	}
}

// otherKeyPEM is a P-256 key the provider does not know.
func otherKeyPEM(t *testing.T) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	mustf(t, err, "GenerateKey")
	der, err := x509.MarshalPKCS8PrivateKey(k)
	mustf(t, err, "MarshalPKCS8PrivateKey")
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}
