package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/internal/netpolicy"
	"github.com/authkit-go/authkit/internal/oauthclient"
)

// AuthStyle says how an OAuth handler authenticates its client to the token
// endpoint (https://www.rfc-editor.org/rfc/rfc6749#section-2.3.1). The
// style is always explicit: a handler never sends a request one way and
// then again the other way.
type AuthStyle int

const (
	// AuthStyleDefault is client_secret_basic when a ClientSecret is
	// set and none (client_id in the form) otherwise.
	AuthStyleDefault AuthStyle = iota
	// AuthStyleBasic sends the client id and secret in an HTTP Basic
	// Authorization header (client_secret_basic).
	AuthStyleBasic
	// AuthStylePost sends the client id and secret in the form
	// (client_secret_post).
	AuthStylePost
	// AuthStyleNone sends only client_id in the form: a public client.
	AuthStyleNone
)

// OAuthConfig is the part of the configuration shared by every OAuth
// handler. It is embedded in each handler's configuration. It never prints
// its secret (an auth.Secret).
type OAuthConfig struct {
	// Endpoints locate the provider: the token endpoint (and device
	// authorization endpoint) directly, or an Issuer to discover them.
	// See [KeycloakEndpoints] and [Auth0Endpoints]. Every URL must be
	// https, or http to a loopback address.
	Endpoints
	// ClientID is the OAuth client id. Required.
	ClientID string
	// ClientSecret authenticates a confidential client.
	ClientSecret auth.Secret
	// AuthStyle says where ClientID and ClientSecret go; see [AuthStyle].
	AuthStyle AuthStyle
	// ClientAssertion authenticates the client with a JWT instead of a
	// secret (RFC 7523 §2.2): [*PrivateKeyJWT] for private_key_jwt, or a
	// federated token such as [FederatedTokenFile]. It excludes
	// ClientSecret and AuthStyle. A new assertion is made per request to
	// the provider.
	ClientAssertion AssertionSource
	// DPoP binds the handler's tokens to a key it holds, with proofs of
	// possession (https://www.rfc-editor.org/rfc/rfc9449): every token
	// request carries a proof, a token the provider issues as token_type
	// DPoP is sent as "Authorization: DPoP <token>" with a new proof per
	// request (by package session and grpcauth, see
	// [auth.RequestAuthenticator]), and the key is kept with the token in
	// the Store. The key is a new ECDSA P-256 key (ES256) unless DPoPKey
	// gives one. A provider that does not support DPoP issues bearer
	// tokens, which are sent as such.
	DPoP bool
	// DPoPKey is the DPoP key, from [auth.NewDPoPKey] (any crypto.Signer
	// with an ECDSA, RSA or Ed25519 key, one in a KMS included); setting it
	// implies DPoP. It prints as its thumbprint only.
	DPoPKey *auth.DPoPKey
	// Scopes replace the scopes the handler requests by default (each
	// handler documents its own, e.g. "openid profile offline_access" for
	// the person logins). To request more than the defaults, use
	// ExtraScopes: replacing them can lose the refresh token ("offline_access")
	// and the ID token ("openid"), and with it the username.
	Scopes []string
	// ExtraScopes are added to Scopes (or to the handler's defaults), e.g.
	// []string{"api1"}.
	ExtraScopes []string
	// Audiences are sent as "audience" parameters, one per value (Auth0 and
	// Keystone-style servers name the API the token is for with it).
	Audiences []string
	// Resources are sent as RFC 8707 "resource" indicators, one per value
	// (https://www.rfc-editor.org/rfc/rfc8707#section-2): absolute URIs
	// without a fragment naming where the token will be used.
	Resources []string
	// ExtraParams are added to every grant request (not to refreshes).
	// They may not override the parameters the handler sets itself.
	ExtraParams url.Values
	// HTTPClient sends the requests; nil means http.DefaultClient. It never
	// follows redirects of the token endpoint.
	HTTPClient *http.Client
	// Clock is the source of time; nil means auth.SystemClock().
	Clock auth.Clock
	// Logger receives debug and warning records, never secrets; nil means
	// silent.
	Logger *slog.Logger
	// UserAgent is sent as User-Agent to the provider (token, device
	// authorization, revocation, discovery, JWKS); empty means
	// auth.DefaultUserAgent.
	UserAgent string
	// Store keeps tokens between runs; nil means memory only. Tokens are
	// keyed by issuer (or token URL), client, username, scopes and audience.
	Store auth.Store
	// Wire names the headers and metadata keys; the zero value is the
	// standard bearer form.
	Wire auth.Wire
	// Margin decides how long before expiry a token is refreshed.
	Margin auth.Margin
	// Discovery caches discovery documents; handlers given the same cache
	// discover once. Nil means a cache of the handler's own.
	Discovery *DiscoveryCache
	// Observer receives what the handler does on its slow paths — token
	// fetches, waits, store operations, revocations, logins — for
	// telemetry: otelauth.New(tracerProvider, meterProvider) reports them
	// to OpenTelemetry. Nil means nobody.
	Observer auth.Observer
	// Retry decides, after a network error, 429 or 5xx, whether the
	// requests the token engine does not retry itself (device
	// authorization, revocation) are sent again; nil means DefaultRetry,
	// NoRetry never. Token requests are retried by the engine, with
	// backoff, for as long as a caller waits.
	Retry RetryPolicy
}

// oauthHandler is the part every OAuth handler (ClientCredentials,
// DeviceCode, BrowserLogin, Password, RefreshToken) shares: the token
// engine (see tokenHandler), the provider plumbing, and the methods that
// only read them.
type oauthHandler struct {
	tokenHandler
	core oauthCore
	user string // the configured username, if any
}

// Username is the user named by the last verified ID token, else the
// configured username, else "" (a client acting as itself).
func (h *oauthHandler) Username() string {
	if p := h.core.username.Load(); p != nil {
		return *p
	}
	if h.engine != nil {
		// A stored login names the user it was verified for.
		if id := h.engine.Current().Identity(); id.Username != "" {
			return id.Username
		}
	}
	return h.user
}

// Close stops the background refresh (and the key set's, if any).
func (h *oauthHandler) Close() error {
	if v := h.core.verifier; v != nil {
		v.close()
	}
	if d := h.core.disc; d != nil && d.owned {
		d.close()
	}
	return h.engine.Close()
}

// personScopes are the default scopes of the person logins (DeviceCode,
// BrowserLogin): an ID token to name the user and a refresh token.
var personScopes = []string{"openid", "profile", "offline_access"}

// initUser is the construction the handlers that log a user in share
// (DeviceCode, BrowserLogin, RefreshToken): cfg's checks, the pinned
// username — which needs an issuer, to verify the ID token that names the
// user — and, with an issuer, ID token verification reading the username
// from claim (empty: DefaultUsernameClaim).
func (h *oauthHandler) initUser(kind string, cfg OAuthConfig, defaultScopes []string, username, claim string) error {
	if username != "" && cfg.Issuer == "" {
		return auth.ConfigError("handlers: %s: Username needs Issuer, to verify the ID token that names the user", kind)
	}
	h.user = username
	if err := h.core.init(kind, cfg, defaultScopes); err != nil {
		return err
	}
	if cfg.Issuer != "" {
		if claim == "" {
			claim = DefaultUsernameClaim
		}
		h.core.setupVerifier(claim)
	}
	return nil
}

// reservedParams are set by the handlers; ExtraParams may not override them.
var reservedParams = map[string]bool{
	"grant_type": true, "client_id": true, "client_secret": true, "scope": true, "audience": true,
	"username": true, "password": true, "refresh_token": true, "device_code": true, "code": true,
	"resource": true, "client_assertion": true, "client_assertion_type": true, "subject_token": true,
	"subject_token_type": true, "actor_token": true, "actor_token_type": true, "requested_token_type": true,
	"assertion": true,
}

// oauthCore is the plumbing shared by the OAuth handlers: the settings
// they use after construction, the token client, endpoint resolution and ID
// token checks. It lives inside each handler, so that a handler is few
// allocations.
type oauthCore struct {
	ep       Endpoints
	clientID string
	params   url.Values   // added to every grant: ExtraParams, scope, audience, resource
	httpc    *http.Client // for discovery and the key set
	client   *oauthclient.Client
	clock    auth.Clock
	log      *slog.Logger
	disc     *DiscoveryCache        // nil without an issuer
	dpop     *auth.DPoPKey          // the key of new logins; nil without DPoP
	verifier *idVerifier            // nil unless ID tokens are verified
	username atomic.Pointer[string] // from the last verified ID token
	subject  atomic.Pointer[string] // its "sub"
}

// discardLogger is the logger of handlers given none.
var discardLogger = slog.New(slog.DiscardHandler)

// init validates cfg and fills c; defaultScopes apply when cfg.Scopes is nil.
func (c *oauthCore) init(kind string, cfg OAuthConfig, defaultScopes []string) error {
	bad := func(format string, args ...any) error {
		return auth.ConfigError("handlers: "+kind+": "+format, args...)
	}
	if cfg.ClientID == "" {
		return bad("ClientID is required")
	}
	if cfg.TokenURL == "" && cfg.Issuer == "" {
		return bad("TokenURL or Issuer is required")
	}
	for _, u := range []struct{ name, v string }{
		{"Issuer", cfg.Issuer}, {"TokenURL", cfg.TokenURL},
		{"DeviceAuthorizationURL", cfg.DeviceAuthorizationURL}, {"JWKSURL", cfg.JWKSURL},
		{"AuthorizationURL", cfg.AuthorizationURL}, {"RevocationURL", cfg.RevocationURL},
	} {
		if u.v == "" {
			continue
		}
		if _, err := netpolicy.CheckURL(u.v); err != nil {
			return bad("%s: %v", u.name, err)
		}
	}
	style := oauthclient.AuthNone
	var assertion oauthclient.AssertionFunc
	switch {
	case cfg.ClientAssertion == nil:
	case !cfg.ClientSecret.IsZero():
		return bad("ClientAssertion and ClientSecret exclude each other; the client authenticates one way")
	case cfg.AuthStyle != AuthStyleDefault:
		return bad("ClientAssertion sends client_assertion; leave AuthStyle unset")
	default:
		style = oauthclient.AuthAssertion
		src, clientID := cfg.ClientAssertion, cfg.ClientID
		assertion = func(ctx context.Context, aud string) (auth.Secret, error) {
			return src.Assertion(ctx, AssertionRequest{ClientID: clientID, Audience: aud, Now: c.clock.Now()})
		}
	}
	switch cfg.AuthStyle {
	case AuthStyleDefault:
		if !cfg.ClientSecret.IsZero() {
			style = oauthclient.AuthBasic
		}
		if assertion != nil {
			style = oauthclient.AuthAssertion
		}
	case AuthStyleBasic, AuthStylePost:
		if cfg.ClientSecret.IsZero() {
			return bad("AuthStyle %d needs a ClientSecret", cfg.AuthStyle)
		}
		style = oauthclient.AuthBasic
		if cfg.AuthStyle == AuthStylePost {
			style = oauthclient.AuthPost
		}
	case AuthStyleNone:
		if !cfg.ClientSecret.IsZero() {
			return bad("AuthStyleNone sends no ClientSecret; remove it or choose another style")
		}
	default:
		return bad("unknown AuthStyle %d", cfg.AuthStyle)
	}
	for k := range cfg.ExtraParams {
		if reservedParams[k] {
			return bad("ExtraParams may not set %q; use the dedicated field", k)
		}
	}
	if cfg.Scopes == nil {
		cfg.Scopes = defaultScopes
	}
	scopes := slices.Clone(cfg.Scopes)
	for _, sc := range cfg.ExtraScopes {
		if !slices.Contains(scopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	for _, r := range cfg.Resources {
		if u, err := url.Parse(r); err != nil || !u.IsAbs() || u.Fragment != "" || strings.HasSuffix(r, "#") {
			return bad("Resources holds %q, which is not an absolute URI without a fragment (RFC 8707 §2)", r)
		}
	}
	var params url.Values // nil when empty: a handler is few allocations
	add := func(k string, v []string) {
		if len(v) > 0 {
			if params == nil {
				params = url.Values{}
			}
			params[k] = slices.Clone(v)
		}
	}
	for k, v := range cfg.ExtraParams {
		add(k, v)
	}
	if len(scopes) > 0 {
		add("scope", []string{strings.Join(scopes, " ")})
	}
	add("audience", cfg.Audiences)
	add("resource", cfg.Resources)
	if err := cfg.Wire.Validate(); err != nil {
		return err
	}
	dpopKey := cfg.DPoPKey
	if dpopKey != nil && !dpopKey.Held() {
		return bad("DPoPKey makes no proofs; make it with auth.NewDPoPKey")
	}
	if dpopKey == nil && cfg.DPoP {
		var err error
		if dpopKey, err = auth.NewDPoPKey(nil); err != nil {
			return bad("DPoP: %v", err)
		}
	}
	c.ep, c.clientID, c.params = cfg.Endpoints, cfg.ClientID, params

	c.httpc, c.clock, c.log, c.disc = cfg.HTTPClient, cfg.Clock, cfg.Logger, cfg.Discovery
	if c.clock == nil {
		c.clock = auth.SystemClock()
	}
	if c.log == nil {
		c.log = discardLogger
	}
	ua, err := auth.CheckUserAgent(cfg.UserAgent)
	if err != nil {
		return bad("UserAgent must not contain control characters")
	}
	if c.disc == nil && cfg.Issuer != "" {
		c.disc = &DiscoveryCache{Client: cfg.HTTPClient, Clock: c.clock, UserAgent: ua, owned: true}
	}
	c.client = oauthclient.New(oauthclient.Config{
		ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, AuthStyle: style, Assertion: assertion,
		HTTPClient: cfg.HTTPClient, Clock: c.clock, Retry: cfg.Retry, Logger: cfg.Logger, UserAgent: ua,
	})
	c.dpop = dpopKey
	return nil
}

// need names the endpoints a step needs besides the token endpoint.
type need uint8

const (
	needDevice     need = 1 << iota // the device authorization endpoint
	needJWKS                        // the key set, to verify ID tokens
	needAuthorize                   // the authorization endpoint
	needRevocation                  // the revocation endpoint
)

// endpoints returns the configured endpoints completed by discovery when
// one that is needed is missing.
func (c *oauthCore) endpoints(ctx context.Context, n need) (Endpoints, error) {
	ep := c.ep
	missing := func(e Endpoints) (string, bool) {
		switch {
		case e.TokenURL == "":
			return "token_endpoint", true
		case n&needDevice != 0 && e.DeviceAuthorizationURL == "":
			return "device_authorization_endpoint", true
		case n&needJWKS != 0 && e.JWKSURL == "":
			return "jwks_uri", true
		case n&needAuthorize != 0 && e.AuthorizationURL == "":
			return "authorization_endpoint", true
		case n&needRevocation != 0 && e.RevocationURL == "":
			return "revocation_endpoint", true
		}
		return "", false
	}
	if _, ok := missing(ep); !ok {
		return ep, nil
	}
	if ep.Issuer == "" {
		switch {
		case n&needDevice != 0 && ep.DeviceAuthorizationURL == "":
			return ep, auth.ConfigError("handlers: DeviceAuthorizationURL or Issuer is required")
		case n&needAuthorize != 0 && ep.AuthorizationURL == "":
			return ep, auth.ConfigError("handlers: AuthorizationURL or Issuer is required")
		case n&needRevocation != 0 && ep.RevocationURL == "":
			return ep, auth.ConfigError("handlers: RevocationURL or Issuer is required to revoke tokens")
		default:
			return ep, auth.ConfigError("handlers: JWKSURL or Issuer is required to verify ID tokens")
		}
	}
	md, err := c.disc.Discover(ctx, ep.Issuer)
	if err != nil {
		return ep, err
	}
	d := md.Endpoints()
	for _, f := range []struct {
		dst  *string
		v    string
		name string
	}{
		{&ep.TokenURL, d.TokenURL, "token_endpoint"},
		{&ep.DeviceAuthorizationURL, d.DeviceAuthorizationURL, "device_authorization_endpoint"},
		{&ep.JWKSURL, d.JWKSURL, "jwks_uri"},
		{&ep.AuthorizationURL, d.AuthorizationURL, "authorization_endpoint"},
		{&ep.RevocationURL, d.RevocationURL, "revocation_endpoint"},
	} {
		if *f.dst != "" || f.v == "" {
			continue
		}
		if _, err := netpolicy.CheckURL(f.v); err != nil {
			return ep, fmt.Errorf("handlers: discovered %s: %w", f.name, err)
		}
		*f.dst = f.v
	}
	if name, ok := missing(ep); ok {
		return ep, auth.ConfigError("handlers: the provider announces no %s", name)
	}
	return ep, nil
}

// grant runs a grant: form carries grant_type and the grant's own
// parameters; scope, audience and ExtraParams are added.
func (c *oauthCore) grant(ctx context.Context, form url.Values) (*auth.Token, error) {
	ep, err := c.endpoints(ctx, 0)
	if err != nil {
		return nil, err
	}
	c.addCommon(form)
	c.log.Debug("handlers: token request", "grant_type", form.Get("grant_type"))
	return c.token(ctx, ep.TokenURL, form, nil)
}

// token posts form to the token endpoint with a DPoP proof when the
// handler has a key (see keyFor).
func (c *oauthCore) token(ctx context.Context, tokenURL string, form url.Values, current *auth.Token) (*auth.Token, error) {
	return c.client.TokenWithProof(ctx, tokenURL, form, c.keyFor(current))
}

// keyFor is the DPoP key of a token request that spends current's refresh
// token (nil: a new login): the key current is bound to, whatever the
// handler's configuration, else the handler's own key, if any.
func (c *oauthCore) keyFor(current *auth.Token) *auth.DPoPKey {
	own := c.dpop
	if current == nil || current.DPoPKey == nil {
		return own
	}
	if k := current.DPoPKey; !k.Held() && own != nil && own.Thumbprint() == k.Thumbprint() {
		return own // a stored login bound to the handler's key, which the store could not keep
	}
	return current.DPoPKey
}

func (c *oauthCore) addCommon(form url.Values) {
	for k, v := range c.params {
		form[k] = slices.Clone(v)
	}
}

// refresh spends current's refresh token
// (https://www.rfc-editor.org/rfc/rfc6749#section-6). Scope is not sent, so
// the provider grants the original scope. When the answer carries no new
// refresh token the old one stays in use.
func (c *oauthCore) refresh(ctx context.Context, current *auth.Token) (*auth.Token, error) {
	ep, err := c.endpoints(ctx, 0)
	if err != nil {
		return nil, err
	}
	c.log.Debug("handlers: token request", "grant_type", "refresh_token")
	tok, err := c.token(ctx, ep.TokenURL, url.Values{
		"grant_type":    {"refresh_token"},
		"refresh_token": {current.RefreshToken.Reveal()},
	}, current)
	if err != nil {
		return nil, err
	}
	return oauthclient.Refreshed(current, tok), nil
}

// logoutUser is the Logout of the handlers that log a user in: the
// handler's own login ends (see tokenHandler.Logout), and then the other
// stored entry of the same user, since a pinned login (Username set) and an
// unpinned one are kept under two keys: for an unpinned handler, the
// pinned entry of the user it learnt; for a pinned one, the unpinned entry
// if its ID token, verified, names that user (it may be anybody's). The
// other entry is revoked and deleted under the store's lock too.
func (h *oauthHandler) logoutUser(ctx context.Context, store auth.Store) error {
	err := h.engine.Logout(ctx)
	if store == nil {
		return err
	}
	c := &h.core
	var key auth.StoreKey
	switch learnt := c.knownUsername(""); {
	case h.user != "":
		key = c.storeKey("")
	case learnt != "":
		key = c.storeKey(learnt)
	default:
		return err
	}
	if l, ok := store.(auth.Locker); ok {
		unlock, lerr := l.Lock(ctx, key)
		if lerr != nil {
			return errors.Join(err, lerr)
		}
		defer unlock()
	}
	tok, lerr := store.Load(ctx, key)
	if lerr != nil || tok == nil {
		return errors.Join(err, lerr)
	}
	if h.user != "" && !c.names(ctx, tok, h.user) {
		return err // another user's login
	}
	if rerr := c.revoke(ctx, tok); rerr != nil {
		err = errors.Join(err, fmt.Errorf("%w: %w", auth.ErrNotRevoked, rerr))
	}
	return errors.Join(err, store.Delete(context.WithoutCancel(ctx), key)) // as the engine does
}

// names reports whether tok's ID token, signed by the provider for this
// client (expired or not), names user.
func (c *oauthCore) names(ctx context.Context, tok *auth.Token, user string) bool {
	if c.verifier == nil || tok.IDToken.IsZero() {
		return false
	}
	ep, err := c.endpoints(ctx, needJWKS)
	if err != nil {
		return false
	}
	name, err := c.verifier.identify(ctx, ep.JWKSURL, tok.IDToken.Reveal())
	return err == nil && name == user
}

// waited names the handler and its provider in an error that ended a wait
// at the caller's deadline or cancellation: a provider that never answers
// would otherwise show as a bare "context deadline exceeded".
func (c *oauthCore) waited(kind string, err error) error {
	if err == nil || !(errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)) {
		return err
	}
	where := c.ep.TokenURL
	if where == "" {
		where = c.ep.Issuer
	}
	return fmt.Errorf("handlers: %s: no token from %s before the caller gave up: %w", kind, where, err)
}

// revoke revokes tok at the provider
// (https://www.rfc-editor.org/rfc/rfc7009): its refresh token first, which
// ends the login (and, at most providers, its access tokens), then its
// access token. Both are tried whatever the first answer.
func (c *oauthCore) revoke(ctx context.Context, tok *auth.Token) error {
	ep, err := c.endpoints(ctx, needRevocation)
	if err != nil {
		return err
	}
	var errs []error
	for _, t := range []struct {
		v    auth.Secret
		hint string
	}{{tok.RefreshToken, "refresh_token"}, {tok.AccessToken, "access_token"}} {
		if t.v.IsZero() {
			continue
		}
		if err := c.client.Revoke(ctx, ep.RevocationURL, t.v.Reveal(), t.hint); err != nil {
			errs = append(errs, fmt.Errorf("handlers: revoking the %s at %s: %w", strings.ReplaceAll(t.hint, "_", " "), ep.RevocationURL, err))
		}
	}
	return errors.Join(errs...)
}

// canRefresh reports whether current carries a refresh token that has not
// expired and, when it is bound to a DPoP key, whether that key is held
// (a stored login bound to a key its store could not keep is refreshed
// only by a handler given that key).
func (c *oauthCore) canRefresh(current *auth.Token) bool {
	return current.RefreshUsableAt(c.clock.Now()) && (current.DPoPKey == nil || c.keyFor(current).Held())
}

// storeKey is the key of the handler's tokens in the store.
func (c *oauthCore) storeKey(username string) auth.StoreKey {
	iss := c.ep.Issuer
	if iss == "" {
		iss = c.ep.TokenURL
	}
	return auth.StoreKey{
		Issuer:    iss,
		ClientID:  c.clientID,
		Username:  username,
		Scopes:    strings.Fields(c.params.Get("scope")),
		Audiences: c.params["audience"],
		Resources: c.params["resource"],
	}
}

// newEngine returns the engine of an OAuth handler configured by cfg.
func (c *oauthCore) newEngine(kind string, cfg OAuthConfig, fetch auth.FetchFunc, check auth.CheckFunc, username string) (*auth.Engine, error) {
	ec := auth.EngineConfig{
		Fetch:    fetch,
		Check:    check,
		Wire:     cfg.Wire,
		Margin:   cfg.Margin,
		Clock:    c.clock,
		Store:    cfg.Store,
		Logger:   cfg.Logger,
		Revoke:   c.revoke,
		Name:     kind,
		Observer: cfg.Observer,
		DPoPKey:  c.dpop,
	}
	if cfg.Store != nil {
		ec.StoreKey = c.storeKey(username)
	}
	return auth.NewEngine(ec)
}

// setupVerifier enables ID token verification with the username in claim.
func (c *oauthCore) setupVerifier(claim string) {
	c.verifier = &idVerifier{
		issuer:   c.ep.Issuer,
		clientID: c.clientID,
		claim:    claim,
		clock:    c.clock,
		client:   c.httpc,
		ua:       c.client.UserAgent(),
	}
}

// checkIdentity verifies tok's ID token, if it has one
// (https://openid.net/specs/openid-connect-core-1_0.html#IDTokenValidation),
// checks that it names want (when set; then the first token must carry an
// ID token) and, for a token that comes after an earlier verified one,
// that it names the same subject
// (https://openid.net/specs/openid-connect-core-1_0.html#RefreshTokenResponse).
// It learns the username and returns the identity, which the engine
// records with the token; a token without an ID token keeps the identity
// it carries (that of the token it refreshed). A key set that cannot be
// fetched is a transient error (auth.IsTransient): the check is worth
// running again.
func (c *oauthCore) checkIdentity(ctx context.Context, tok *auth.Token, want string) (auth.Identity, error) {
	return c.checkLogin(ctx, tok, want, "")
}

// checkLogin is checkIdentity for the answer to a login that sent nonce
// (when not empty): the ID token must carry it
// (https://openid.net/specs/openid-connect-core-1_0.html#NonceNotes).
func (c *oauthCore) checkLogin(ctx context.Context, tok *auth.Token, want, nonce string) (auth.Identity, error) {
	carried := tok.Identity()
	if tok.IDToken.IsZero() || c.verifier == nil {
		if want != "" && c.subject.Load() == nil && carried.Subject == "" {
			// A pinned username is only as good as the ID token that
			// proves it: without one, the login is refused.
			return auth.Identity{}, fmt.Errorf("%w: the provider sent no ID token, so the configured username %q cannot be verified; request the \"openid\" scope",
				ErrInvalidIDToken, want)
		}
		c.setUsername(carried.Username)
		return carried, nil
	}
	ep, err := c.endpoints(ctx, needJWKS)
	if err != nil {
		return auth.Identity{}, err
	}
	claims, name, err := c.verifier.verify(ctx, ep.JWKSURL, tok.IDToken.Reveal())
	if err != nil {
		return auth.Identity{}, err
	}
	if got, _ := claims["nonce"].(string); nonce != "" && got != nonce {
		return auth.Identity{}, fmt.Errorf("%w: its nonce is not the one this login sent (a replayed or injected ID token); log in again", ErrInvalidIDToken)
	}
	sub, _ := claims["sub"].(string)
	prev := carried.Subject
	if p := c.subject.Load(); p != nil {
		prev = *p
	}
	if prev != "" && prev != sub {
		return auth.Identity{}, fmt.Errorf("%w: the new ID token names subject %q, the login named %q (OpenID Connect Core §12.2); log in again",
			auth.ErrUserMismatch, sub, prev)
	}
	if want != "" && name == "" {
		return auth.Identity{}, fmt.Errorf("%w: it has no %q claim to compare with the configured username %q; set UsernameClaim to a claim the provider sends (e.g. \"email\" or \"sub\")",
			ErrInvalidIDToken, c.verifier.claim, want)
	}
	if want != "" && name != want {
		return auth.Identity{}, fmt.Errorf("%w: logged in as %q, want %q; log in as %q or change the configured username",
			auth.ErrUserMismatch, name, want, want)
	}
	c.subject.Store(&sub)
	c.setUsername(name)
	return auth.Identity{Subject: sub, Username: name}, nil
}

// setUsername records the username learnt from an ID token.
func (c *oauthCore) setUsername(name string) {
	if name != "" {
		c.username.Store(&name)
	}
}

// knownUsername is the learnt username, or fallback.
func (c *oauthCore) knownUsername(fallback string) string {
	if p := c.username.Load(); p != nil {
		return *p
	}
	return fallback
}

// refreshRejected reports whether err is the provider refusing the refresh
// token itself: invalid_grant (https://www.rfc-editor.org/rfc/rfc6749#section-5.2),
// or the HTTP 400 invalid_request that Dex answers for a spent, unknown or
// expired refresh token.
func refreshRejected(err error) bool {
	if errors.Is(err, auth.ErrInvalidGrant) {
		return true
	}
	var oe *auth.OAuthError
	return errors.As(err, &oe) && oe.Code == "invalid_request" && oe.StatusCode == http.StatusBadRequest
}

// loginRequired wraps a rejected refresh as auth.ErrLoginRequired.
func loginRequired(err error) error {
	if refreshRejected(err) {
		return fmt.Errorf("%w: the refresh token was rejected: %w", auth.ErrLoginRequired, err)
	}
	return err
}
