package authtest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/internal/dpop"
	"github.com/authkit-go/authkit/internal/jsonresp"
)

// Endpoint paths served by a [Provider]. They are also the keys of
// [Provider.Requests], [Provider.LastRequest] and [Counts.Endpoints].
const (
	// EndpointDiscovery is the OpenID Connect discovery document
	// (https://openid.net/specs/openid-connect-discovery-1_0.html#ProviderConfig).
	EndpointDiscovery = "/.well-known/openid-configuration"
	// EndpointKeys is the JSON Web Key Set (https://www.rfc-editor.org/rfc/rfc7517#section-5).
	EndpointKeys = "/keys"
	// EndpointToken is the token endpoint (https://www.rfc-editor.org/rfc/rfc6749#section-3.2).
	EndpointToken = "/token"
	// EndpointDeviceCode is the device authorization endpoint
	// (https://www.rfc-editor.org/rfc/rfc8628#section-3.1).
	EndpointDeviceCode = "/device/code"
	// EndpointDevice is the verification URI shown to the user
	// (https://www.rfc-editor.org/rfc/rfc8628#section-3.3). It answers a
	// plain-text page; approve with [Provider.ApproveDevice].
	EndpointDevice = "/device"
	// EndpointRevoke is the revocation endpoint (https://www.rfc-editor.org/rfc/rfc7009).
	EndpointRevoke = "/revoke"
	// EndpointAuthorize is the authorization endpoint
	// (https://www.rfc-editor.org/rfc/rfc6749#section-3.1): an HTML login
	// form that a browser, or a [Browser], submits.
	EndpointAuthorize = "/authorize"
)

// Grant types accepted by the token endpoint; they are the keys of
// [Provider.GrantRequests] and [Counts.Grants].
const (
	// GrantDeviceCode is the device authorization grant (https://www.rfc-editor.org/rfc/rfc8628#section-3.4).
	GrantDeviceCode = "urn:ietf:params:oauth:grant-type:device_code"
	// GrantClientCredentials is https://www.rfc-editor.org/rfc/rfc6749#section-4.4.
	GrantClientCredentials = "client_credentials"
	// GrantPassword is https://www.rfc-editor.org/rfc/rfc6749#section-4.3.
	GrantPassword = "password"
	// GrantRefreshToken is https://www.rfc-editor.org/rfc/rfc6749#section-6.
	GrantRefreshToken = "refresh_token"
)

// Client authentication methods
// (https://openid.net/specs/openid-connect-core-1_0.html#ClientAuthentication).
const (
	// AuthMethodBasic is HTTP Basic with the form-encoded client id and
	// secret (https://www.rfc-editor.org/rfc/rfc6749#section-2.3.1).
	AuthMethodBasic = "client_secret_basic"
	// AuthMethodPost is client_id and client_secret in the form body.
	AuthMethodPost = "client_secret_post"
	// AuthMethodNone is a public client sending only client_id.
	AuthMethodNone = "none"
)

// Defaults of [ProviderConfig]'s zero values.
const (
	DefaultAccessTokenLifetime  = 5 * time.Minute
	DefaultRefreshTokenLifetime = 30 * time.Minute
	DefaultDeviceCodeLifetime   = 10 * time.Minute
	DefaultDeviceInterval       = 5 * time.Second
	DefaultTOTPParam            = "totp"
)

// Client is an OAuth client registered with a [Provider].
type Client struct {
	// ID is the client_id.
	ID string
	// Secret is the client secret; empty makes a public client, which
	// authenticates with client_id alone (method "none").
	Secret string
	// AuthMethods lists the methods the client may use: AuthMethodBasic,
	// AuthMethodPost. Nil means both for a confidential client; a public
	// client always uses AuthMethodNone.
	AuthMethods []string
	// Grants lists the grant types the client may use; nil means all.
	Grants []string
	// PublicKeys authenticate the client by private_key_jwt
	// (AuthMethodPrivateKeyJWT, RFC 7523 §2.2): a client assertion signed
	// by one of them (RS*, PS*, ES*, EdDSA), with iss and sub the client
	// id, aud the token endpoint or the issuer, exp at most 5 minutes
	// ahead and a jti never seen before.
	PublicKeys []crypto.PublicKey
	// Federated are the workload identities that may authenticate as the
	// client with a token their own issuer signed, sent as the client
	// assertion (the model of Azure's and Google's workload identity
	// federation): see [Federated] and ProviderConfig.TrustedIssuers.
	Federated []Federated
	// RedirectURIs are the redirect URIs of the authorization code grant,
	// matched exactly, except that a loopback http URI matches any port
	// (https://www.rfc-editor.org/rfc/rfc8252#section-7.3). Nil means
	// http://127.0.0.1/callback, http://[::1]/callback and
	// http://localhost/callback.
	RedirectURIs []string
}

// User is a resource owner known to a [Provider].
type User struct {
	// Username is the login name and the "sub" and "preferred_username" claims.
	Username string
	// Password is checked by the password grant and the login form.
	Password string
	// TOTPSecret, if set, is a base32 RFC 6238 secret: the password grant
	// then also requires a valid code in the form parameter named by
	// ProviderConfig.TOTPParam.
	TOTPSecret string
	// Email, if set, becomes the "email" claim.
	Email string
	// Claims are further claims put in the user's access and ID tokens.
	Claims map[string]any
}

// ProviderConfig configures a [Provider]. Every zero value is usable.
type ProviderConfig struct {
	// Clients are the registered clients.
	Clients []Client
	// Users are the known users.
	Users []User
	// TLS serves HTTPS with httptest.NewTLSServer; use [Provider.Client].
	TLS bool
	// Clock is the provider's time, for expiries, token claims and device
	// polling; nil means the system clock. Tests pass [NewClock].
	Clock auth.Clock
	// Key signs tokens; nil generates an RSA 2048 key.
	Key *rsa.PrivateKey
	// AccessTokenLifetime is "expires_in"; zero means 5 minutes.
	AccessTokenLifetime time.Duration
	// IDTokenLifetime is the ID token's lifetime; zero means AccessTokenLifetime.
	IDTokenLifetime time.Duration
	// RefreshTokenLifetime is "refresh_expires_in"; zero means 30 minutes.
	RefreshTokenLifetime time.Duration
	// DeviceCodeLifetime is the device code's "expires_in"; zero means 10 minutes.
	DeviceCodeLifetime time.Duration
	// DeviceInterval is the initial polling "interval" (whole seconds on
	// the wire); zero means 5 seconds.
	DeviceInterval time.Duration
	// Audience is the "aud" of access tokens; empty means the "audience"
	// form parameter if the client sent one, otherwise the client id.
	Audience string
	// AlwaysIssueRefreshToken issues refresh tokens to the device and
	// password grants even without the offline_access scope.
	AlwaysIssueRefreshToken bool
	// TOTPParam names the form parameter carrying the TOTP code; empty means "totp".
	TOTPParam string
	// Dialect selects how the provider answers where real providers
	// differ; the zero value answers as Keycloak and oidc-provider do.
	Dialect Dialect
	// TrustedIssuers are the other issuers whose tokens the provider
	// accepts as federated client assertions and as the subject tokens of
	// token exchange (GrantTokenExchange).
	TrustedIssuers []TrustedIssuer
	// DPoPNonce makes the token endpoint require a nonce in DPoP proofs
	// (https://www.rfc-editor.org/rfc/rfc9449#section-8): a proof without
	// the current one is answered use_dpop_nonce with the nonce in a
	// DPoP-Nonce header. Token requests with a proof get DPoP-bound tokens
	// with or without it (see [Provider.RotateDPoPNonce]).
	DPoPNonce bool
}

// Dialect is a real provider's way of answering, where providers differ.
// The interop tests (interop/) check each dialect against the real provider.
type Dialect int

const (
	// DialectStandard: a spent refresh token gets invalid_grant and revokes
	// its whole chain (as oidc-provider and Keycloak do), a wrong password
	// gets invalid_grant, token_type is "Bearer", and ID tokens carry
	// preferred_username.
	DialectStandard Dialect = iota
	// DialectDex answers as Dex v2.45 does: a spent refresh token gets HTTP
	// 400 invalid_request (descDexRefreshClaimed) and the newest token of the
	// chain stays valid; a wrong password gets HTTP 401 access_denied;
	// token_type is "bearer"; tokens carry no preferred_username (the name is
	// in "name", the login in "email").
	DialectDex
)

// descDexRefreshClaimed is Dex's error_description for a spent refresh token.
const descDexRefreshClaimed = "Refresh token is invalid or has already been claimed by another client."

// Provider is an in-process OAuth 2.0 / OpenID Connect provider served by an
// httptest.Server. All its methods are safe for concurrent use.
type Provider struct {
	cfg  ProviderConfig
	srv  *httptest.Server
	done chan struct{}
	once sync.Once

	mu            sync.Mutex   // guards everything below
	keys          []signingKey // keys[0] signs; the others are only published
	clients       map[string]Client
	users         map[string]User
	devices       map[string]*deviceGrant // by device code
	userCode      map[string]*deviceGrant // by normalized user code
	authRequests  map[string]*authRequest // login forms shown, by request id
	authCodes     map[string]*authCode    // issued authorization codes
	refresh       map[string]*refreshRecord
	accessSess    map[string]*session // user access token -> its login
	ccTokens      map[string]string   // client credentials access token -> client
	revokedAccess map[string]bool
	revocations   int
	sessions      []*session
	onDevice      func(userCode string)
	auto          *autoApproval
	faults        faults
	counts        Counts
	last          map[string]*RecordedRequest
	reused        int                  // logins revoked by refresh token reuse detection
	jtis          map[string]time.Time // client assertion jti -> its exp
	replays       int                  // client assertions refused as replayed
	dpop          *dpop.Verifier       // checks the DPoP proofs of token requests
	nonce         string               // the DPoP nonce proofs must carry, with DPoPNonce
	nonceAsked    int                  // token requests answered use_dpop_nonce
}

// NewProvider starts a provider; stop it with Close. It panics only if no
// signing key can be generated.
func NewProvider(cfg ProviderConfig) *Provider {
	if cfg.Clock == nil {
		cfg.Clock = auth.SystemClock()
	}
	if cfg.AccessTokenLifetime == 0 {
		cfg.AccessTokenLifetime = DefaultAccessTokenLifetime
	}
	if cfg.IDTokenLifetime == 0 {
		cfg.IDTokenLifetime = cfg.AccessTokenLifetime
	}
	if cfg.RefreshTokenLifetime == 0 {
		cfg.RefreshTokenLifetime = DefaultRefreshTokenLifetime
	}
	if cfg.DeviceCodeLifetime == 0 {
		cfg.DeviceCodeLifetime = DefaultDeviceCodeLifetime
	}
	if cfg.DeviceInterval == 0 {
		cfg.DeviceInterval = DefaultDeviceInterval
	}
	if cfg.TOTPParam == "" {
		cfg.TOTPParam = DefaultTOTPParam
	}
	key := cfg.Key
	if key == nil {
		var err error
		key, err = rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic("authtest: generating the signing key: " + err.Error())
		}
	}
	p := &Provider{
		cfg:           cfg,
		done:          make(chan struct{}),
		keys:          []signingKey{{key: key, kid: thumbprint(&key.PublicKey)}},
		clients:       make(map[string]Client),
		users:         make(map[string]User),
		devices:       make(map[string]*deviceGrant),
		userCode:      make(map[string]*deviceGrant),
		authRequests:  make(map[string]*authRequest),
		authCodes:     make(map[string]*authCode),
		refresh:       make(map[string]*refreshRecord),
		accessSess:    make(map[string]*session),
		ccTokens:      make(map[string]string),
		jtis:          make(map[string]time.Time),
		revokedAccess: make(map[string]bool),
		counts:        Counts{Endpoints: map[string]int{}, Grants: map[string]int{}},
		last:          make(map[string]*RecordedRequest),
		dpop:          dpop.NewVerifier(cfg.Clock.Now, 0),
	}
	for _, c := range cfg.Clients {
		p.clients[c.ID] = c
	}
	for _, u := range cfg.Users {
		p.users[u.Username] = u
	}
	mux := http.NewServeMux()
	mux.HandleFunc(EndpointDiscovery, p.serveDiscovery)
	mux.HandleFunc(EndpointKeys, p.serveKeys)
	mux.HandleFunc(EndpointToken, p.serveToken)
	mux.HandleFunc(EndpointDeviceCode, p.serveDeviceCode)
	mux.HandleFunc(EndpointDevice, p.serveDevicePage)
	mux.HandleFunc(EndpointRevoke, p.serveRevoke)
	mux.HandleFunc(EndpointAuthorize, p.serveAuthorize)
	h := p.instrument(mux)
	p.srv = httptest.NewUnstartedServer(h)
	p.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // e.g. TLS handshakes of untrusting clients
	if cfg.TLS {
		p.srv.StartTLS()
	} else {
		p.srv.Start()
	}
	return p
}

// AddClient registers or replaces a client while the provider runs.
func (p *Provider) AddClient(c Client) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clients[c.ID] = c
}

// AddUser adds or replaces a user while the provider runs.
func (p *Provider) AddUser(u User) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.users[u.Username] = u
}

// Close stops the server; requests held by [Provider.SetLatency] are answered
// at once with 503.
func (p *Provider) Close() {
	p.once.Do(func() { close(p.done) })
	p.srv.Close()
}

// URL is the server's base URL, e.g. "http://127.0.0.1:41234".
func (p *Provider) URL() string { return p.srv.URL }

// Issuer is the "iss" of every token and of discovery; it equals URL.
func (p *Provider) Issuer() string { return p.srv.URL }

// Client returns an HTTP client for the server; with TLS it trusts the
// server's certificate.
func (p *Provider) Client() *http.Client { return p.srv.Client() }

// DiscoveryURL is the URL of the OpenID Connect discovery document.
func (p *Provider) DiscoveryURL() string { return p.srv.URL + EndpointDiscovery }

// JWKSURL is the URL of the JSON Web Key Set.
func (p *Provider) JWKSURL() string { return p.srv.URL + EndpointKeys }

// TokenURL is the URL of the token endpoint.
func (p *Provider) TokenURL() string { return p.srv.URL + EndpointToken }

// DeviceAuthorizationURL is the URL of the device authorization endpoint.
func (p *Provider) DeviceAuthorizationURL() string { return p.srv.URL + EndpointDeviceCode }

// VerificationURL is the device flow's verification_uri.
func (p *Provider) VerificationURL() string { return p.srv.URL + EndpointDevice }

// RevocationURL is the URL of the revocation endpoint.
func (p *Provider) RevocationURL() string { return p.srv.URL + EndpointRevoke }

// AuthorizationURL is the URL of the (not yet served) authorization endpoint.
func (p *Provider) AuthorizationURL() string { return p.srv.URL + EndpointAuthorize }

// signingKey is an RSA key and its key id.
type signingKey struct {
	key *rsa.PrivateKey
	kid string
}

func (p *Provider) currentKey() signingKey {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.keys[0]
}

// PublicKey returns the public half of the current signing key.
func (p *Provider) PublicKey() *rsa.PublicKey { return &p.currentKey().key.PublicKey }

// KeyID returns the "kid" of the current signing key, its RFC 7638 thumbprint.
func (p *Provider) KeyID() string { return p.currentKey().kid }

// RotateKey makes key (nil: a new RSA 2048 key) the signing key. With
// keepOld the previous keys stay in the JWKS, as during a real rotation;
// without it they are dropped, so tokens they signed no longer verify. It
// returns the new key id.
func (p *Provider) RotateKey(key *rsa.PrivateKey, keepOld bool) string {
	if key == nil {
		var err error
		key, err = rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic("authtest: generating the signing key: " + err.Error())
		}
	}
	k := signingKey{key: key, kid: thumbprint(&key.PublicKey)}
	p.mu.Lock()
	defer p.mu.Unlock()
	if keepOld {
		p.keys = append([]signingKey{k}, p.keys...)
	} else {
		p.keys = []signingKey{k}
	}
	return k.kid
}

// keySet returns the JSON Web Key Set served at [EndpointKeys], the current
// signing key first.
func (p *Provider) keySet() keySet {
	p.mu.Lock()
	defer p.mu.Unlock()
	var set keySet
	for _, k := range p.keys {
		pub := &k.key.PublicKey
		set.Keys = append(set.Keys, jwk{
			KeyType:   "RSA",
			Use:       "sig",
			Algorithm: "RS256",
			KeyID:     k.kid,
			N:         b64(pub.N.Bytes()),
			E:         b64(big.NewInt(int64(pub.E)).Bytes()),
		})
	}
	return set
}

// keySet is a JSON Web Key Set (https://www.rfc-editor.org/rfc/rfc7517#section-5).
type keySet struct {
	// Keys are the keys.
	Keys []jwk `json:"keys"`
}

// jwk is an RSA public JSON Web Key (https://www.rfc-editor.org/rfc/rfc7518#section-6.3).
type jwk struct {
	// KeyType is "kty", always "RSA".
	KeyType string `json:"kty"`
	// Use is "use", always "sig".
	Use string `json:"use"`
	// Algorithm is "alg", always "RS256".
	Algorithm string `json:"alg"`
	// KeyID is "kid".
	KeyID string `json:"kid"`
	// N is the base64url modulus.
	N string `json:"n"`
	// E is the base64url exponent.
	E string `json:"e"`
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// thumbprint is the RFC 7638 SHA-256 thumbprint of an RSA key.
func thumbprint(pub *rsa.PublicKey) string {
	s := fmt.Sprintf(`{"e":%q,"kty":"RSA","n":%q}`, b64(big.NewInt(int64(pub.E)).Bytes()), b64(pub.N.Bytes()))
	sum := sha256.Sum256([]byte(s))
	return b64(sum[:])
}

func (p *Provider) now() time.Time { return p.cfg.Clock.Now() }

// Clock returns the provider's clock: ProviderConfig.Clock, or the system
// clock.
func (p *Provider) Clock() auth.Clock { return p.cfg.Clock }

// instrument counts and records each request, then applies the latency.
func (p *Provider) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := record(r)
		p.mu.Lock()
		p.counts.Endpoints[r.URL.Path]++
		if r.URL.Path == EndpointToken {
			p.counts.Grants[rec.Form.Get("grant_type")]++
		}
		p.last[r.URL.Path] = rec
		latency := p.faults.latency
		p.mu.Unlock()
		if latency > 0 {
			t := time.NewTimer(latency)
			defer t.Stop()
			select {
			case <-t.C:
			case <-r.Context().Done():
				return
			case <-p.done:
				http.Error(w, "provider closed", http.StatusServiceUnavailable)
				return
			}
		}
		if p.applyChaos(w, r) {
			return
		}
		next.ServeHTTP(w, r)
	})
}

// discovery is the OpenID Connect discovery document served at
// [EndpointDiscovery]; each field is the metadata of the same JSON name
// (https://openid.net/specs/openid-connect-discovery-1_0.html#ProviderMetadata,
// https://www.rfc-editor.org/rfc/rfc8414#section-2).
type discovery struct {
	// Issuer is "issuer".
	Issuer string `json:"issuer"`
	// AuthorizationEndpoint is "authorization_endpoint".
	AuthorizationEndpoint string `json:"authorization_endpoint"`
	// TokenEndpoint is "token_endpoint".
	TokenEndpoint string `json:"token_endpoint"`
	// DeviceAuthorizationEndpoint is "device_authorization_endpoint".
	DeviceAuthorizationEndpoint string `json:"device_authorization_endpoint"`
	// RevocationEndpoint is "revocation_endpoint".
	RevocationEndpoint string `json:"revocation_endpoint"`
	// JWKSURI is "jwks_uri".
	JWKSURI string `json:"jwks_uri"`
	// GrantTypesSupported is "grant_types_supported".
	GrantTypesSupported []string `json:"grant_types_supported"`
	// ResponseTypesSupported is "response_types_supported".
	ResponseTypesSupported []string `json:"response_types_supported"`
	// SubjectTypesSupported is "subject_types_supported".
	SubjectTypesSupported []string `json:"subject_types_supported"`
	// ScopesSupported is "scopes_supported".
	ScopesSupported []string `json:"scopes_supported"`
	// TokenEndpointAuthMethodsSupported is "token_endpoint_auth_methods_supported".
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	// RevocationEndpointAuthMethodsSupported is "revocation_endpoint_auth_methods_supported".
	RevocationEndpointAuthMethodsSupported []string `json:"revocation_endpoint_auth_methods_supported"`
	// IDTokenSigningAlgValuesSupported is "id_token_signing_alg_values_supported".
	IDTokenSigningAlgValuesSupported []string `json:"id_token_signing_alg_values_supported"`
	// CodeChallengeMethodsSupported is "code_challenge_methods_supported"
	// (https://www.rfc-editor.org/rfc/rfc8414#section-2).
	CodeChallengeMethodsSupported []string `json:"code_challenge_methods_supported"`
}

// discoveryDoc returns the document served at [EndpointDiscovery].
func (p *Provider) discoveryDoc() discovery {
	methods := []string{AuthMethodBasic, AuthMethodPost, AuthMethodNone}
	return discovery{
		Issuer:                                 p.Issuer(),
		AuthorizationEndpoint:                  p.AuthorizationURL(),
		TokenEndpoint:                          p.TokenURL(),
		DeviceAuthorizationEndpoint:            p.DeviceAuthorizationURL(),
		RevocationEndpoint:                     p.RevocationURL(),
		JWKSURI:                                p.JWKSURL(),
		GrantTypesSupported:                    []string{GrantAuthorizationCode, GrantDeviceCode, GrantClientCredentials, GrantPassword, GrantRefreshToken},
		ResponseTypesSupported:                 []string{"code"},
		SubjectTypesSupported:                  []string{"public"},
		ScopesSupported:                        []string{"openid", "profile", "email", "offline_access"},
		TokenEndpointAuthMethodsSupported:      methods,
		RevocationEndpointAuthMethodsSupported: methods,
		IDTokenSigningAlgValuesSupported:       []string{"RS256"},
		CodeChallengeMethodsSupported:          []string{"S256"},
	}
}

func (p *Provider) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	if p.applyFaults(w, r.URL.Path) {
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET")
		return
	}
	writeJSON(w, http.StatusOK, p.discoveryDoc())
}

func (p *Provider) serveKeys(w http.ResponseWriter, r *http.Request) {
	if p.applyFaults(w, r.URL.Path) {
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET")
		return
	}
	writeJSON(w, http.StatusOK, p.keySet())
}

func (p *Provider) serveDevicePage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "authtest device verification: approve with Provider.ApproveDevice")
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeError(w, http.StatusMethodNotAllowed, "invalid_request", "method not allowed; use "+allow)
}

func writeJSON(w http.ResponseWriter, status int, v any) { jsonresp.Write(w, status, v) }

// writeError writes an RFC 6749 §5.2 error answer.
func writeError(w http.ResponseWriter, status int, code, desc string) {
	body := map[string]string{"error": code}
	if desc != "" {
		body["error_description"] = desc
	}
	writeJSON(w, status, body)
}

// oauthErr is an error answer being built by a grant.
type oauthErr struct {
	status int
	code   string
	desc   string
	basic  bool // add WWW-Authenticate: Basic
}

func (e *oauthErr) write(w http.ResponseWriter) {
	if e.basic {
		w.Header().Set("WWW-Authenticate", `Basic realm="authtest"`)
	}
	writeError(w, e.status, e.code, e.desc)
}

func badRequest(code, desc string) *oauthErr {
	return &oauthErr{status: http.StatusBadRequest, code: code, desc: desc}
}

func invalidGrant(desc string) *oauthErr { return badRequest("invalid_grant", desc) }

func hasScope(scope, s string) bool {
	for _, f := range strings.Fields(scope) {
		if f == s {
			return true
		}
	}
	return false
}
