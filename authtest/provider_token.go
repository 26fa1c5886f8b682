package authtest

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/internal/totp"
)

// Error descriptions of the provider's answers, for assertions in tests.
const (
	descRefreshReused       = "refresh token reused; grant revoked"
	descSessionNotActive    = "Session not active"
	descRefreshExpired      = "Token is not active"
	descRefreshInvalid      = "Invalid refresh token"
	descRefreshWrongClient  = "Invalid refresh token: issued to another client"
	descInvalidCredentials  = "Invalid user credentials"
	descTOTPRequired        = "TOTP code required"
	descTOTPInvalid         = "Invalid TOTP code"
	descDeviceCodeInvalid   = "Invalid device code"
	descDeviceCodeSpent     = "device code already used"
	descDeviceCodeExpired   = "device code expired"
	descAuthorizationDenied = "the user denied the authorization request"
	descPending             = "the user has not approved yet"
	descSlowDown            = "polling too fast; slow down"
	descClientUnknown       = "unknown client"
	descClientSecretWrong   = "invalid client secret"
	descClientMethod        = "client authentication method not allowed for this client"
	descClientTwoMethods    = "client authenticated with more than one method"
	descClientAuthRequired  = "client authentication required"
)

// tokenResponse is the JSON answer of the token endpoint
// (https://www.rfc-editor.org/rfc/rfc6749#section-5.1), with Keycloak's
// refresh_expires_in.
type tokenResponse struct {
	// AccessToken is "access_token", an RS256 JWT.
	AccessToken string `json:"access_token"`
	// TokenType is "token_type": "Bearer" ("bearer" in DialectDex), or
	// "DPoP" for a request with a DPoP proof.
	TokenType string `json:"token_type"`
	// ExpiresIn is "expires_in" in seconds.
	ExpiresIn int64 `json:"expires_in"`
	// RefreshToken is "refresh_token", an opaque string, when issued.
	RefreshToken string `json:"refresh_token,omitempty"`
	// RefreshExpiresIn is "refresh_expires_in" in seconds, when a refresh token is issued.
	RefreshExpiresIn int64 `json:"refresh_expires_in,omitempty"`
	// IDToken is "id_token", when the scope holds openid and a user logged in.
	IDToken string `json:"id_token,omitempty"`
	// Scope is the granted "scope", when not empty.
	Scope string `json:"scope,omitempty"`
	// IssuedTokenType is RFC 8693's "issued_token_type", for token exchange.
	IssuedTokenType string `json:"issued_token_type,omitempty"`
}

// session is one login: the chain of refresh tokens descending from it.
type session struct {
	username string
	clientID string
	scope    string
	audience string
	revoked  bool
}

type refreshRecord struct {
	sess    *session
	expires time.Time
	spent   bool
	jkt     string // the DPoP key it is bound to, if any
}

// clientPost is the start of every endpoint a client POSTs a form to:
// injected faults, the form itself, and client authentication. It answers
// the request itself and returns false when the endpoint must stop.
func (p *Provider) clientPost(w http.ResponseWriter, r *http.Request) (Client, bool) {
	if p.applyFaults(w, r.URL.Path) {
		return Client{}, false
	}
	if e := checkFormPost(r); e != nil {
		e.write(w)
		return Client{}, false
	}
	c, e := p.authenticateClient(r)
	if e != nil {
		e.write(w)
		return Client{}, false
	}
	return c, true
}

func (p *Provider) serveToken(w http.ResponseWriter, r *http.Request) {
	client, ok := p.clientPost(w, r)
	if !ok {
		return
	}
	if r = p.proofOf(w, r); r == nil {
		return
	}
	grant := r.PostForm.Get("grant_type")
	if grant == "" {
		badRequest("invalid_request", "missing grant_type").write(w)
		return
	}
	if !slices.Contains([]string{GrantAuthorizationCode, GrantDeviceCode, GrantClientCredentials, GrantPassword, GrantRefreshToken, GrantTokenExchange, GrantJWTBearer}, grant) {
		badRequest("unsupported_grant_type", "unsupported grant_type "+grant).write(w)
		return
	}
	if client.Grants != nil && !slices.Contains(client.Grants, grant) {
		badRequest("unauthorized_client", "the client may not use grant_type "+grant).write(w)
		return
	}
	var (
		resp *tokenResponse
		e    *oauthErr
	)
	switch grant {
	case GrantClientCredentials:
		resp, e = p.clientCredentials(r, client)
	case GrantPassword:
		resp, e = p.password(r, client)
	case GrantRefreshToken:
		resp, e = p.refreshGrant(r, client)
	case GrantDeviceCode:
		resp, e = p.deviceGrant(r, client)
	case GrantAuthorizationCode:
		resp, e = p.codeGrant(r, client)
	case GrantTokenExchange:
		resp, e = p.tokenExchange(r, client)
	case GrantJWTBearer:
		resp, e = p.jwtBearer(r, client)
	}
	if e != nil {
		e.write(w)
		return
	}
	p.bindDPoP(r, resp)
	writeJSON(w, http.StatusOK, resp)
}

// checkFormPost requires a POST with a form body.
func checkFormPost(r *http.Request) *oauthErr {
	if r.Method != http.MethodPost {
		return &oauthErr{status: http.StatusMethodNotAllowed, code: "invalid_request", desc: "method not allowed; use POST"}
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return badRequest("invalid_request", "the body must be application/x-www-form-urlencoded")
	}
	if err := r.ParseForm(); err != nil {
		return badRequest("invalid_request", "malformed form body")
	}
	return nil
}

// authenticateClient applies https://www.rfc-editor.org/rfc/rfc6749#section-2.3:
// one method per request, the method the client is registered for, secrets
// compared in constant time. Failures are 401 invalid_client (§5.2).
func (p *Provider) authenticateClient(r *http.Request) (Client, *oauthErr) {
	basicID, basicSecret, basic := basicAuth(r)
	formSecret, post := r.PostForm["client_secret"]
	formID := r.PostForm.Get("client_id")
	fail := func(desc string) (Client, *oauthErr) {
		return Client{}, &oauthErr{status: http.StatusUnauthorized, code: "invalid_client", desc: desc, basic: basic}
	}
	if _, ok := r.PostForm["client_assertion"]; ok {
		return p.assertedClient(r, fail)
	}
	if basic && post {
		return fail(descClientTwoMethods)
	}
	method, id := AuthMethodNone, formID
	switch {
	case basic:
		method, id = AuthMethodBasic, basicID
		if formID != "" && formID != basicID {
			return fail("client_id does not match the authenticated client")
		}
	case post:
		method = AuthMethodPost
	}
	if id == "" {
		return fail("missing client_id")
	}
	p.mu.Lock()
	c, ok := p.clients[id]
	p.mu.Unlock()
	if !ok {
		return fail(descClientUnknown)
	}
	if c.Secret == "" && (len(c.PublicKeys) > 0 || len(c.Federated) > 0) && r.PostForm.Get("grant_type") != GrantJWTBearer {
		return fail(descClientAuthRequired) // the JWT bearer grant's assertion authenticates by itself
	}
	if c.Secret == "" {
		if method != AuthMethodNone {
			return fail(descClientMethod)
		}
		return c, nil
	}
	if method == AuthMethodNone {
		e := &oauthErr{status: http.StatusUnauthorized, code: "invalid_client", desc: descClientAuthRequired}
		e.basic = c.AuthMethods == nil || slices.Contains(c.AuthMethods, AuthMethodBasic)
		return Client{}, e
	}
	if c.AuthMethods != nil && !slices.Contains(c.AuthMethods, method) {
		return fail(descClientMethod)
	}
	secret := basicSecret
	if method == AuthMethodPost {
		if len(formSecret) != 1 {
			return fail("client_secret must be sent once")
		}
		secret = formSecret[0]
	}
	if subtle.ConstantTimeCompare([]byte(secret), []byte(c.Secret)) != 1 {
		return fail(descClientSecretWrong)
	}
	return c, nil
}

func (p *Provider) clientCredentials(r *http.Request, c Client) (*tokenResponse, *oauthErr) {
	scope := strings.Join(strings.Fields(r.PostForm.Get("scope")), " ")
	aud := p.audience(r, c.ID)
	now := p.now()
	return &tokenResponse{
		AccessToken: p.clientToken(now, c.ID, aud, scope),
		TokenType:   "Bearer",
		ExpiresIn:   seconds(p.cfg.AccessTokenLifetime),
		Scope:       scope,
	}, nil
}

func (p *Provider) password(r *http.Request, c Client) (*tokenResponse, *oauthErr) {
	name, pw := r.PostForm.Get("username"), r.PostForm.Get("password")
	if name == "" {
		return nil, badRequest("invalid_request", "missing username")
	}
	p.mu.Lock()
	u, ok := p.users[name]
	p.mu.Unlock()
	// Compare even for an unknown user, so timing does not reveal which names exist.
	want := u.Password
	if !ok {
		want = "\x00unknown user"
	}
	if subtle.ConstantTimeCompare([]byte(pw), []byte(want)) != 1 || !ok {
		if p.cfg.Dialect == DialectDex {
			return nil, &oauthErr{status: http.StatusUnauthorized, code: "access_denied", desc: "Invalid username or password"}
		}
		return nil, invalidGrant(descInvalidCredentials)
	}
	if u.TOTPSecret != "" {
		code := r.PostForm.Get(p.cfg.TOTPParam)
		if code == "" {
			return nil, invalidGrant(descTOTPRequired)
		}
		if !totp.Verify(u.TOTPSecret, code, p.now()) {
			return nil, invalidGrant(descTOTPInvalid)
		}
	}
	scope := strings.Join(strings.Fields(r.PostForm.Get("scope")), " ")
	return p.login(u.Username, c.ID, scope, p.audience(r, c.ID)), nil
}

func (p *Provider) refreshGrant(r *http.Request, c Client) (*tokenResponse, *oauthErr) {
	rt := r.PostForm.Get("refresh_token")
	if rt == "" {
		return nil, badRequest("invalid_request", "missing refresh_token")
	}
	now := p.now()
	p.mu.Lock()
	rec, ok := p.refresh[rt]
	var e *oauthErr
	switch {
	case !ok:
		e = invalidGrant(descRefreshInvalid)
	case rec.sess.clientID != c.ID:
		e = invalidGrant(descRefreshWrongClient)
	case rec.spent && p.cfg.Dialect == DialectDex:
		e = badRequest("invalid_request", descDexRefreshClaimed)
	case rec.spent:
		if !rec.sess.revoked {
			p.reused++
		}
		rec.sess.revoked = true
		e = invalidGrant(descRefreshReused)
	case rec.sess.revoked:
		e = invalidGrant(descSessionNotActive)
	case !now.Before(rec.expires):
		e = invalidGrant(descRefreshExpired)
	default:
		e = p.refreshKeyRefused(r, rec)
	}
	if e != nil {
		p.mu.Unlock()
		return nil, e
	}
	sess := rec.sess
	scope := sess.scope
	if s := r.PostForm.Get("scope"); s != "" {
		for _, f := range strings.Fields(s) {
			if !hasScope(sess.scope, f) {
				p.mu.Unlock()
				return nil, badRequest("invalid_scope", "scope "+f+" was not granted originally")
			}
		}
		scope = strings.Join(strings.Fields(s), " ")
	}
	omit := p.faults.omitRefesh
	resp := &tokenResponse{TokenType: p.tokenType(), ExpiresIn: seconds(p.cfg.AccessTokenLifetime), Scope: scope}
	if !omit {
		rec.spent = true
		resp.RefreshToken = p.newRefreshLocked(sess, now)
		resp.RefreshExpiresIn = seconds(p.cfg.RefreshTokenLifetime)
	}
	p.mu.Unlock()
	p.signUserTokens(resp, now, sess, c.ID, scope, "")
	return resp, nil
}

// login starts a session for a user who just authenticated and answers tokens.
func (p *Provider) login(username, clientID, scope, aud string) *tokenResponse {
	resp, _ := p.loginSession(username, clientID, scope, aud, "")
	return resp
}

// loginSession is login that also returns the session, and puts nonce (when
// not empty) in the ID token.
func (p *Provider) loginSession(username, clientID, scope, aud, nonce string) (*tokenResponse, *session) {
	now := p.now()
	resp := &tokenResponse{TokenType: p.tokenType(), ExpiresIn: seconds(p.cfg.AccessTokenLifetime), Scope: scope}
	p.mu.Lock()
	sess := &session{username: username, clientID: clientID, scope: scope, audience: aud}
	p.sessions = append(p.sessions, sess)
	if !p.faults.omitRefesh && (p.cfg.AlwaysIssueRefreshToken || hasScope(scope, "offline_access")) {
		resp.RefreshToken = p.newRefreshLocked(sess, now)
		resp.RefreshExpiresIn = seconds(p.cfg.RefreshTokenLifetime)
	}
	p.mu.Unlock()
	p.signUserTokens(resp, now, sess, clientID, scope, nonce)
	return resp, sess
}

func (p *Provider) signUserTokens(resp *tokenResponse, now time.Time, sess *session, clientID, scope, nonce string) {
	resp.AccessToken = p.accessToken(now, sess.username, clientID, sess.audience, scope, p.cfg.AccessTokenLifetime)
	p.mu.Lock()
	p.accessSess[resp.AccessToken] = sess
	p.mu.Unlock()
	if hasScope(scope, "openid") {
		resp.IDToken = p.idToken(now, sess.username, clientID, nonce)
	}
}

func (p *Provider) newRefreshLocked(sess *session, now time.Time) string {
	rt := randomString(32)
	p.refresh[rt] = &refreshRecord{sess: sess, expires: now.Add(p.cfg.RefreshTokenLifetime)}
	return rt
}

// audience is the "aud" of an access token; see ProviderConfig.Audience.
func (p *Provider) audience(r *http.Request, clientID string) string {
	if p.cfg.Audience != "" {
		return p.cfg.Audience
	}
	if a := r.PostForm.Get("audience"); a != "" {
		return a
	}
	return clientID
}

// userClaims adds preferred_username, email and the user's claims.
func (p *Provider) userClaims(claims jwt.MapClaims, username string) {
	p.mu.Lock()
	u, ok := p.users[username]
	p.mu.Unlock()
	if ok {
		for k, v := range u.Claims {
			claims[k] = v
		}
		if u.Email != "" {
			claims["email"] = u.Email
		}
	}
	if p.cfg.Dialect == DialectDex {
		claims["name"] = username
		return
	}
	claims["preferred_username"] = username
}

// tokenType is the token_type of the answers: Dex writes it in lowercase.
func (p *Provider) tokenType() string {
	if p.cfg.Dialect == DialectDex {
		return "bearer"
	}
	return "Bearer"
}

func (p *Provider) accessToken(now time.Time, username, clientID, aud, scope string, lifetime time.Duration) string {
	claims := jwt.MapClaims{}
	p.userClaims(claims, username)
	claims["iss"] = p.Issuer()
	claims["sub"] = username
	claims["aud"] = aud
	claims["azp"] = clientID
	claims["client_id"] = clientID
	claims["iat"] = now.Unix()
	claims["nbf"] = now.Unix()
	claims["exp"] = now.Add(lifetime).Unix()
	claims["jti"] = randomString(16)
	if scope != "" {
		claims["scope"] = scope
	}
	return p.sign(claims)
}

func (p *Provider) idToken(now time.Time, username, clientID, nonce string) string {
	claims := jwt.MapClaims{}
	p.userClaims(claims, username)
	claims["iss"] = p.Issuer()
	claims["sub"] = username
	claims["aud"] = clientID
	claims["azp"] = clientID
	claims["iat"] = now.Unix()
	claims["nbf"] = now.Unix()
	claims["exp"] = now.Add(p.cfg.IDTokenLifetime).Unix()
	claims["jti"] = randomString(16)
	if nonce != "" {
		claims["nonce"] = nonce
	}
	return p.sign(claims)
}

func (p *Provider) sign(claims jwt.MapClaims) string {
	k := p.currentKey()
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	t.Header["kid"] = k.kid
	s, err := t.SignedString(k.key)
	if err != nil {
		panic("authtest: signing a token: " + err.Error())
	}
	return s
}

// IssueAccessToken signs an access token for username and clientID without
// a flow, valid from the provider's now for lifetime (zero means
// AccessTokenLifetime; negative gives an already expired token). Its "aud"
// is ProviderConfig.Audience or else clientID.
func (p *Provider) IssueAccessToken(username, clientID string, scopes []string, lifetime time.Duration) string {
	if lifetime == 0 {
		lifetime = p.cfg.AccessTokenLifetime
	}
	aud := p.cfg.Audience
	if aud == "" {
		aud = clientID
	}
	return p.accessToken(p.now(), username, clientID, aud, strings.Join(scopes, " "), lifetime)
}

// IssueIDToken signs an ID token for username and clientID without a flow.
func (p *Provider) IssueIDToken(username, clientID string) string {
	return p.idToken(p.now(), username, clientID, "")
}

// IssueRefreshToken starts a session for username and clientID without a
// flow and returns its first refresh token, valid for RefreshTokenLifetime.
func (p *Provider) IssueRefreshToken(username, clientID string, scopes []string) string {
	aud := p.cfg.Audience
	if aud == "" {
		aud = clientID
	}
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	sess := &session{username: username, clientID: clientID, scope: strings.Join(scopes, " "), audience: aud}
	p.sessions = append(p.sessions, sess)
	return p.newRefreshLocked(sess, now)
}

// ReusedRefreshTokens returns how many logins the provider revoked because a
// spent refresh token was presented again (reuse detection, as Ory Hydra
// and oidc-provider do it): each is a login a client lost by spending a
// rotated refresh token twice.
func (p *Provider) ReusedRefreshTokens() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reused
}

// RevokeSession ends every session of username on the server side, as an
// administrator would: their refresh tokens then answer invalid_grant
// "Session not active". It returns how many sessions it ended.
func (p *Provider) RevokeSession(username string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, s := range p.sessions {
		if s.username == username && !s.revoked {
			s.revoked = true
			n++
		}
	}
	return n
}

// Keyfunc is a jwt.Keyfunc that returns the published key named by the
// token's "kid", after checking the algorithm is RS256.
func (p *Provider) Keyfunc(t *jwt.Token) (any, error) {
	if t.Method.Alg() != "RS256" {
		return nil, fmt.Errorf("%w: alg %q, want RS256", auth.ErrMalformedToken, t.Method.Alg())
	}
	kid, _ := t.Header["kid"].(string)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, k := range p.keys {
		if k.kid == kid {
			return &k.key.PublicKey, nil
		}
	}
	return nil, fmt.Errorf("%w: unknown kid %q", auth.ErrMalformedToken, kid)
}

func (p *Provider) serveRevoke(w http.ResponseWriter, r *http.Request) {
	c, ok := p.clientPost(w, r)
	if !ok {
		return
	}
	tok := r.PostForm.Get("token")
	if tok == "" {
		badRequest("invalid_request", "missing token").write(w)
		return
	}
	// https://www.rfc-editor.org/rfc/rfc7009#section-2.2: unknown tokens
	// answer 200 as well. A refresh token ends its login: the refresh
	// tokens and the access tokens issued in it stop working. An access
	// token stops working alone.
	p.mu.Lock()
	if rec, ok := p.refresh[tok]; ok && rec.sess.clientID == c.ID {
		rec.sess.revoked = true
	} else if sess, ok := p.accessSess[tok]; ok && sess.clientID == c.ID {
		p.revokedAccess[tok] = true
	} else if _, ok := p.accessSess[tok]; !ok && p.ccTokens[tok] == c.ID {
		p.revokedAccess[tok] = true
	}
	p.revocations++
	p.mu.Unlock()
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// clientToken signs a client credentials access token and remembers
// whose it is, for revocation.
func (p *Provider) clientToken(now time.Time, clientID, aud, scope string) string {
	t := p.accessToken(now, "service-account-"+clientID, clientID, aud, scope, p.cfg.AccessTokenLifetime)
	p.mu.Lock()
	p.ccTokens[t] = clientID
	p.mu.Unlock()
	return t
}

// AccessTokenRevoked reports whether the provider revoked accessToken
// (https://www.rfc-editor.org/rfc/rfc7009): by itself, or with the login
// it was issued in (its refresh token revoked, or revoked by reuse
// detection). A platform.Platform (authtest/platform) of this provider
// refuses such tokens.
func (p *Provider) AccessTokenRevoked(accessToken string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.revokedAccess[accessToken] {
		return true
	}
	sess, ok := p.accessSess[accessToken]
	return ok && sess.revoked
}

// Revocations returns how many revocation requests the provider answered
// with success.
func (p *Provider) Revocations() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.revocations
}

func seconds(d time.Duration) int64 { return int64(d / time.Second) }

func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
