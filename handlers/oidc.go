package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/internal/flight"
	"github.com/authkit-go/authkit/internal/jwks"
	"github.com/authkit-go/authkit/internal/netpolicy"
	"github.com/authkit-go/authkit/internal/oauthclient"
	"github.com/authkit-go/authkit/internal/redact"
)

// Endpoints are the addresses of an OAuth 2.0 / OpenID Connect provider.
// Set TokenURL (and DeviceAuthorizationURL for the device flow) directly, or
// only Issuer to have them discovered
// (https://openid.net/specs/openid-connect-discovery-1_0.html#ProviderConfig).
// Fields given explicitly win over discovered ones.
type Endpoints struct {
	// Issuer is the provider's issuer identifier. It is needed to verify ID
	// tokens and to discover the fields left empty.
	Issuer string
	// AuthorizationURL is the authorization endpoint of the browser login
	// (https://www.rfc-editor.org/rfc/rfc6749#section-3.1).
	AuthorizationURL string
	// TokenURL is the token endpoint
	// (https://www.rfc-editor.org/rfc/rfc6749#section-3.2).
	TokenURL string
	// DeviceAuthorizationURL is the device authorization endpoint
	// (https://www.rfc-editor.org/rfc/rfc8628#section-3.1).
	DeviceAuthorizationURL string
	// JWKSURL is the provider's JSON Web Key Set, used to verify ID tokens.
	JWKSURL string
	// RevocationURL is the token revocation endpoint that Logout uses
	// (https://www.rfc-editor.org/rfc/rfc7009#section-2).
	RevocationURL string
}

// KeycloakEndpoints returns the endpoints of a Keycloak realm: server is the
// base URL (e.g. "https://sso.example.com", or ".../auth" for old
// versions), realm its name.
func KeycloakEndpoints(server, realm string) Endpoints {
	base := strings.TrimRight(server, "/") + "/realms/" + url.PathEscape(realm)
	oidc := base + "/protocol/openid-connect"
	return Endpoints{
		Issuer:                 base,
		AuthorizationURL:       oidc + "/auth",
		TokenURL:               oidc + "/token",
		DeviceAuthorizationURL: oidc + "/auth/device",
		JWKSURL:                oidc + "/certs",
		RevocationURL:          oidc + "/revoke",
	}
}

// Auth0Endpoints returns the endpoints of an Auth0-style tenant domain
// (e.g. "example.eu.auth0.com").
func Auth0Endpoints(domain string) Endpoints {
	base := "https://" + strings.TrimRight(strings.TrimPrefix(domain, "https://"), "/")
	return Endpoints{
		Issuer:                 base + "/",
		AuthorizationURL:       base + "/authorize",
		TokenURL:               base + "/oauth/token",
		DeviceAuthorizationURL: base + "/oauth/device/code",
		JWKSURL:                base + "/.well-known/jwks.json",
		RevocationURL:          base + "/oauth/revoke",
	}
}

// ProviderMetadata is the part of an OpenID Connect discovery document
// authkit uses
// (https://openid.net/specs/openid-connect-discovery-1_0.html#ProviderMetadata).
type ProviderMetadata struct {
	Issuer                      string   `json:"issuer"`
	AuthorizationEndpoint       string   `json:"authorization_endpoint,omitempty"`
	TokenEndpoint               string   `json:"token_endpoint"`
	DeviceAuthorizationEndpoint string   `json:"device_authorization_endpoint,omitempty"`
	JWKSURI                     string   `json:"jwks_uri,omitempty"`
	RevocationEndpoint          string   `json:"revocation_endpoint,omitempty"`
	GrantTypesSupported         []string `json:"grant_types_supported,omitempty"`
	TokenEndpointAuthMethods    []string `json:"token_endpoint_auth_methods_supported,omitempty"`
}

// Endpoints returns the metadata's endpoints.
func (m *ProviderMetadata) Endpoints() Endpoints {
	return Endpoints{
		Issuer:                 m.Issuer,
		AuthorizationURL:       m.AuthorizationEndpoint,
		TokenURL:               m.TokenEndpoint,
		DeviceAuthorizationURL: m.DeviceAuthorizationEndpoint,
		JWKSURL:                m.JWKSURI,
		RevocationURL:          m.RevocationEndpoint,
	}
}

// ErrIssuerMismatch means a discovery document or an ID token names another
// issuer than the one configured
// (https://openid.net/specs/openid-connect-discovery-1_0.html#ProviderConfigurationValidation).
var ErrIssuerMismatch = errors.New("handlers: issuer mismatch")

// ErrInvalidIDToken is wrapped by every ID token verification failure; the
// error also wraps the jwt/v5 error that says why (jwt.ErrTokenExpired,
// jwt.ErrTokenInvalidAudience, jwt.ErrTokenSignatureInvalid...).
var ErrInvalidIDToken = errors.New("handlers: invalid ID token")

// Discover fetches issuer's discovery document with client (nil means
// http.DefaultClient) and checks that it names issuer. Redirects that
// downgrade from https to http are refused (a forged document would name
// a token endpoint of the forger's). It does not cache; a [DiscoveryCache]
// does.
func Discover(ctx context.Context, client *http.Client, issuer string) (*ProviderMetadata, error) {
	return discover(ctx, client, issuer, auth.DefaultUserAgent)
}

// discover is Discover sending ua as User-Agent.
func discover(ctx context.Context, client *http.Client, issuer, ua string) (*ProviderMetadata, error) {
	c := http.Client{Timeout: 30 * time.Second}
	if client != nil {
		c = *client
	}
	c.CheckRedirect = netpolicy.CheckRedirect
	client = &c
	u := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, auth.ConfigError("handlers: issuer %q is not a URL", issuer)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", ua)
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("handlers: discovery of %s: %w", issuer, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, oauthclient.MaxBodySize+1))
	if err != nil {
		return nil, fmt.Errorf("handlers: discovery of %s: %w", issuer, err)
	}
	bad := func(reason string) error {
		return fmt.Errorf("handlers: discovery of %s: %w", issuer, &auth.ResponseError{
			StatusCode: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"),
			Excerpt: redact.Excerpt(body, nil), Reason: reason,
		})
	}
	switch {
	case len(body) > oauthclient.MaxBodySize:
		return nil, bad("body exceeds 1 MiB")
	case resp.StatusCode != http.StatusOK:
		return nil, bad(fmt.Sprintf("HTTP status %d", resp.StatusCode))
	}
	var md ProviderMetadata
	if err := json.Unmarshal(body, &md); err != nil {
		return nil, bad("not a discovery document")
	}
	if md.Issuer != issuer {
		return nil, fmt.Errorf("%w: %s names issuer %q, want %q", ErrIssuerMismatch, u, md.Issuer, issuer)
	}
	if md.TokenEndpoint == "" {
		return nil, bad("no token_endpoint")
	}
	return &md, nil
}

// DiscoveryCache caches discovery documents per issuer for TTL, with one
// fetch in flight per issuer; each caller waits only as long as its ctx
// allows. Handlers given the same cache discover once. The zero value is
// ready to use.
type DiscoveryCache struct {
	// Client fetches the documents; nil means a client with a 30 s
	// timeout.
	Client *http.Client
	// TTL is how long a document is reused; zero means one hour.
	TTL time.Duration
	// Clock times the TTL; nil means auth.SystemClock().
	Clock auth.Clock
	// UserAgent is sent as User-Agent; empty means auth.DefaultUserAgent.
	UserAgent string

	group   flight.Group[string, *ProviderMetadata]
	mu      sync.Mutex // guards entries
	entries map[string]cachedMetadata
	owned   bool // made by a handler for itself: closed with it
}

type cachedMetadata struct {
	md *ProviderMetadata
	at time.Time
}

// Discover returns issuer's metadata, from the cache when fresh.
func (c *DiscoveryCache) Discover(ctx context.Context, issuer string) (*ProviderMetadata, error) {
	clock := c.Clock
	if clock == nil {
		clock = auth.SystemClock()
	}
	ttl := c.TTL
	if ttl <= 0 {
		ttl = time.Hour
	}
	c.mu.Lock()
	e, ok := c.entries[issuer]
	c.mu.Unlock()
	if ok && clock.Now().Sub(e.at) < ttl {
		return e.md, nil
	}
	// The fetch is shared: it runs on the cache's own bounded lifetime,
	// not on the ctx of whichever caller started it.
	md, err := c.group.Do(ctx, issuer, func(ctx context.Context) (*ProviderMetadata, error) {
		ua := c.UserAgent
		if ua == "" {
			ua = auth.DefaultUserAgent
		}
		md, err := discover(ctx, c.Client, issuer, ua)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		if c.entries == nil {
			c.entries = make(map[string]cachedMetadata)
		}
		c.entries[issuer] = cachedMetadata{md: md, at: clock.Now()}
		c.mu.Unlock()
		return md, nil
	})
	if errors.Is(err, flight.ErrClosed) {
		return nil, auth.ErrClosed
	}
	return md, err
}

// close ends the fetches in flight of a cache a handler owns.
func (c *DiscoveryCache) close() { c.group.Close() }

// idVerifier verifies ID tokens
// (https://openid.net/specs/openid-connect-core-1_0.html#IDTokenValidation):
// signature by a key of the provider's JWKS (authkit's one verifier, with
// its allow-list of asymmetric algorithms), iss, aud and exp against the
// injected clock.
type idVerifier struct {
	issuer   string
	clientID string
	claim    string
	clock    auth.Clock
	client   *http.Client
	ua       string

	mu       sync.Mutex // guards the fields below; never held during a fetch
	closed   bool
	url      string
	keys     *jwks.KeySet
	verifier *jwks.Verifier
}

// forURL returns the verifier of the key set at jwksURL, made on first use
// (with no I/O: keys are fetched when a token needs them).
func (v *idVerifier) forURL(jwksURL string) (*jwks.Verifier, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return nil, auth.ErrClosed
	}
	if v.verifier != nil && v.url == jwksURL {
		return v.verifier, nil
	}
	ks, err := jwks.NewKeySet(jwks.Config{URL: jwksURL, HTTPClient: v.client, Clock: v.clock, UserAgent: v.ua})
	if err != nil {
		return nil, err
	}
	verifier, err := jwks.NewVerifier(jwks.VerifierConfig{KeySet: ks})
	if err != nil {
		ks.Close()
		return nil, err
	}
	if v.keys != nil {
		v.keys.Close()
	}
	v.url, v.keys, v.verifier = jwksURL, ks, verifier
	return verifier, nil
}

// verify checks raw and returns its claims and the username claim. Keys
// that cannot be fetched are a transient error.
func (v *idVerifier) verify(ctx context.Context, jwksURL, raw string) (jwt.MapClaims, string, error) {
	verifier, err := v.forURL(jwksURL)
	if err != nil {
		return nil, "", err
	}
	claims := jwt.MapClaims{}
	_, err = verifier.Parse(ctx, raw, claims,
		jwt.WithIssuer(v.issuer),
		jwt.WithAudience(v.clientID),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(v.clock.Now),
		jwt.WithLeeway(30*time.Second),
	)
	if errors.Is(err, jwks.ErrKeysUnavailable) {
		return nil, "", auth.Transient(fmt.Errorf("handlers: the provider's keys are unavailable: %w", err))
	}
	if err != nil {
		return nil, "", fmt.Errorf("%w: %w", ErrInvalidIDToken, err)
	}
	name, _ := claims[v.claim].(string)
	return claims, name, nil
}

// identify returns the username of an ID token signed by the provider for
// this client, expired or not: enough to tell whose stored login it is,
// never to authenticate anybody.
func (v *idVerifier) identify(ctx context.Context, jwksURL, raw string) (string, error) {
	verifier, err := v.forURL(jwksURL)
	if err != nil {
		return "", err
	}
	claims := jwt.MapClaims{}
	if _, err := verifier.Parse(ctx, raw, claims, jwt.WithoutClaimsValidation()); err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidIDToken, err)
	}
	iss, _ := claims.GetIssuer()
	aud, _ := claims.GetAudience()
	if iss != v.issuer || !slices.Contains(aud, v.clientID) {
		return "", fmt.Errorf("%w: issued by %q for %v, not by %q for %q", ErrInvalidIDToken, iss, aud, v.issuer, v.clientID)
	}
	name, _ := claims[v.claim].(string)
	return name, nil
}

// close ends a key set fetch in flight; later verifications fail.
func (v *idVerifier) close() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.closed = true
	if v.keys != nil {
		v.keys.Close()
	}
}
