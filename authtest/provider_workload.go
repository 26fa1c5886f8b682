package authtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Workload identity: client assertions (RFC 7523 §2.2), federated
// assertions and token exchange (RFC 8693).
const (
	// AuthMethodPrivateKeyJWT is client authentication by a JWT the
	// client signed with a key registered in Client.PublicKeys.
	AuthMethodPrivateKeyJWT = "private_key_jwt"
	// GrantTokenExchange is RFC 8693's grant type.
	GrantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	// GrantJWTBearer is RFC 7523 §2.1's grant type: the assertion is signed
	// by a key of the client (Client.PublicKeys; iss the client id) or by
	// a trusted issuer.
	GrantJWTBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	// TokenTypeJWT and TokenTypeAccessToken are RFC 8693 §3 token types.
	TokenTypeJWT         = "urn:ietf:params:oauth:token-type:jwt"
	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"

	clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	maxAssertionAhead   = 5 * time.Minute
)

// TrustedIssuer is another issuer whose tokens the provider accepts: a
// Kubernetes cluster's service-account issuer, GitHub Actions, another
// Provider ([Provider.IssueJWT] mints its tokens).
type TrustedIssuer struct {
	// Issuer is the tokens' iss.
	Issuer string
	// Key verifies their signatures.
	Key crypto.PublicKey
	// Audience is the aud its tokens must carry to be accepted here.
	Audience string
	// ExchangeAudiences are the audiences a token exchange of its tokens
	// may ask for (the "audience" parameter); nil allows only none.
	// Others are refused with invalid_target.
	ExchangeAudiences []string
}

// Federated names a workload that may authenticate as a client with a
// token its own issuer signed (a TrustedIssuer): the token's iss and sub.
type Federated struct {
	Issuer  string
	Subject string
}

// IssueJWT signs claims with the provider's current key, as it signs its
// own tokens: for tests that need a token of another issuer (a service
// account's, a CI job's), from a second Provider.
func (p *Provider) IssueJWT(claims map[string]any) string {
	return p.sign(jwt.MapClaims(claims))
}

// ReplayedAssertions counts client assertions refused because their jti
// was used before.
func (p *Provider) ReplayedAssertions() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.replays
}

// assertedClient authenticates a client by its client_assertion: signed
// with one of its PublicKeys (private_key_jwt), or by a trusted issuer
// for one of its Federated identities.
func (p *Provider) assertedClient(r *http.Request, fail func(string) (Client, *oauthErr)) (Client, *oauthErr) {
	if r.PostForm.Get("client_assertion_type") != clientAssertionType {
		return fail("client_assertion_type must be " + clientAssertionType)
	}
	if _, two := r.PostForm["client_secret"]; two || r.Header.Get("Authorization") != "" {
		return fail(descClientTwoMethods)
	}
	raw := r.PostForm.Get("client_assertion")
	unverified, _, err := jwt.NewParser().ParseUnverified(raw, jwt.MapClaims{})
	if err != nil {
		return fail("client_assertion is not a JWT")
	}
	claims := unverified.Claims.(jwt.MapClaims)
	iss, _ := claims["iss"].(string)
	id := r.PostForm.Get("client_id")
	if id == "" {
		id = iss
	}
	p.mu.Lock()
	c, ok := p.clients[id]
	trusted := slices.Clone(p.cfg.TrustedIssuers)
	p.mu.Unlock()
	if !ok {
		return fail(descClientUnknown)
	}
	if iss == id && len(c.PublicKeys) > 0 {
		return p.privateKeyJWT(r, c, raw, fail)
	}
	for _, f := range c.Federated {
		if f.Issuer != iss {
			continue
		}
		sub, e := p.verifyTrusted(raw, trusted)
		if e != "" {
			return fail("federated client assertion: " + e)
		}
		if sub != f.Subject {
			return fail(fmt.Sprintf("federated client assertion: subject %q may not act as client %q", sub, id))
		}
		return c, nil
	}
	return fail("client_assertion: neither the client's key nor a federated identity of " + id)
}

func (p *Provider) privateKeyJWT(r *http.Request, c Client, raw string, fail func(string) (Client, *oauthErr)) (Client, *oauthErr) {
	now := p.now()
	var tok *jwt.Token
	var err error
	for _, k := range c.PublicKeys {
		tok, err = jwt.NewParser(jwt.WithValidMethods(methodsFor(k)), jwt.WithTimeFunc(func() time.Time { return now }),
			jwt.WithExpirationRequired(), jwt.WithIssuer(c.ID), jwt.WithSubject(c.ID)).
			Parse(raw, func(*jwt.Token) (any, error) { return k, nil })
		if err == nil {
			break
		}
	}
	if err != nil {
		return fail("private_key_jwt: " + err.Error())
	}
	claims := tok.Claims.(jwt.MapClaims)
	auds, _ := claims.GetAudience()
	endpoint := p.Issuer() + r.URL.Path
	if !slices.Contains(auds, endpoint) && !slices.Contains(auds, p.Issuer()) && !slices.Contains(auds, p.TokenURL()) {
		return fail(fmt.Sprintf("private_key_jwt: aud %q is neither the endpoint nor the issuer", auds))
	}
	exp, _ := claims.GetExpirationTime()
	if exp.Sub(now) > maxAssertionAhead {
		return fail("private_key_jwt: exp is more than 5 minutes ahead")
	}
	jti, _ := claims["jti"].(string)
	if jti == "" {
		return fail("private_key_jwt: no jti")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, t := range p.jtis {
		if now.After(t) {
			delete(p.jtis, k)
		}
	}
	if _, seen := p.jtis[jti]; seen {
		p.replays++
		return fail("private_key_jwt: jti already used (a replayed assertion)")
	}
	p.jtis[jti] = exp.Time
	return c, nil
}

// methodsFor lists the JWS algorithms of key's type.
func methodsFor(key crypto.PublicKey) []string {
	switch key.(type) {
	case *rsa.PublicKey:
		return []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	case *ecdsa.PublicKey:
		return []string{"ES256", "ES384", "ES512"}
	case ed25519.PublicKey:
		return []string{"EdDSA"}
	}
	return nil
}

// verifyTrusted verifies a token of a trusted issuer and returns its sub,
// or why it is refused.
func (p *Provider) verifyTrusted(raw string, trusted []TrustedIssuer) (sub, why string) {
	ti, why := trustedOf(raw, trusted)
	if why != "" {
		return "", why
	}
	now := p.now()
	tok, err := jwt.NewParser(jwt.WithValidMethods(methodsFor(ti.Key)), jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithExpirationRequired(), jwt.WithIssuer(ti.Issuer), jwt.WithAudience(ti.Audience)).
		Parse(raw, func(*jwt.Token) (any, error) { return ti.Key, nil })
	if err != nil {
		return "", err.Error()
	}
	sub, _ = tok.Claims.GetSubject()
	if sub == "" {
		return "", "no sub"
	}
	return sub, ""
}

func trustedOf(raw string, trusted []TrustedIssuer) (TrustedIssuer, string) {
	t, _, err := jwt.NewParser().ParseUnverified(raw, jwt.MapClaims{})
	if err != nil {
		return TrustedIssuer{}, "not a JWT"
	}
	iss, _ := t.Claims.GetIssuer()
	for _, ti := range trusted {
		if ti.Issuer == iss {
			return ti, ""
		}
	}
	return TrustedIssuer{}, fmt.Sprintf("issuer %q is not trusted", iss)
}

// tokenExchange is RFC 8693's grant: a subject token of a trusted issuer
// for an access token of this provider, for the subject, with the
// requested audience if the issuer's policy allows it.
func (p *Provider) tokenExchange(r *http.Request, c Client) (*tokenResponse, *oauthErr) {
	f := r.PostForm
	subject := f.Get("subject_token")
	switch {
	case subject == "":
		return nil, badRequest("invalid_request", "missing subject_token")
	case f.Get("subject_token_type") == "":
		return nil, badRequest("invalid_request", "missing subject_token_type")
	case f.Get("subject_token_type") != TokenTypeJWT && f.Get("subject_token_type") != TokenTypeAccessToken:
		return nil, badRequest("invalid_request", "unsupported subject_token_type "+f.Get("subject_token_type"))
	}
	if rt := f.Get("requested_token_type"); rt != "" && rt != TokenTypeAccessToken && rt != TokenTypeJWT {
		return nil, badRequest("invalid_request", "this provider issues access tokens only")
	}
	p.mu.Lock()
	trusted := slices.Clone(p.cfg.TrustedIssuers)
	p.mu.Unlock()
	ti, why := trustedOf(subject, trusted)
	if why != "" {
		return nil, badRequest("invalid_grant", "subject_token: "+why)
	}
	sub, why := p.verifyTrusted(subject, trusted)
	if why != "" {
		return nil, badRequest("invalid_grant", "subject_token: "+why)
	}
	aud := c.ID
	if reqAud := f["audience"]; len(reqAud) > 0 {
		for _, a := range reqAud {
			if !slices.Contains(ti.ExchangeAudiences, a) {
				return nil, badRequest("invalid_target", fmt.Sprintf("tokens of %s may not be exchanged for audience %q", ti.Issuer, a))
			}
		}
		aud = reqAud[0]
	}
	if p.cfg.Audience != "" {
		aud = p.cfg.Audience
	}
	scope := strings.Join(strings.Fields(f.Get("scope")), " ")
	now := p.now()
	at := p.accessToken(now, sub, c.ID, aud, scope, p.cfg.AccessTokenLifetime)
	p.mu.Lock()
	p.ccTokens[at] = c.ID
	p.mu.Unlock()
	return &tokenResponse{AccessToken: at, TokenType: "Bearer", ExpiresIn: seconds(p.cfg.AccessTokenLifetime),
		Scope: scope, IssuedTokenType: TokenTypeAccessToken}, nil
}

// jwtBearer is RFC 7523 §2.1's grant: an assertion the client signed
// (self-signed service identity: iss the client id, aud the token
// endpoint or the issuer, a jti never seen) or a trusted issuer's token.
func (p *Provider) jwtBearer(r *http.Request, c Client) (*tokenResponse, *oauthErr) {
	raw := r.PostForm.Get("assertion")
	if raw == "" {
		return nil, badRequest("invalid_request", "missing assertion")
	}
	t, _, err := jwt.NewParser().ParseUnverified(raw, jwt.MapClaims{})
	if err != nil {
		return nil, badRequest("invalid_grant", "assertion is not a JWT")
	}
	iss, _ := t.Claims.GetIssuer()
	var sub string
	if iss == c.ID && len(c.PublicKeys) > 0 {
		invalid := func(desc string) (Client, *oauthErr) {
			return Client{}, badRequest("invalid_grant", desc)
		}
		if _, e := p.privateKeyJWT(r, c, raw, invalid); e != nil {
			return nil, e
		}
		sub, _ = t.Claims.GetSubject()
	} else {
		p.mu.Lock()
		trusted := slices.Clone(p.cfg.TrustedIssuers)
		p.mu.Unlock()
		var why string
		if sub, why = p.verifyTrusted(raw, trusted); why != "" {
			return nil, badRequest("invalid_grant", "assertion: "+why)
		}
	}
	scope := strings.Join(strings.Fields(r.PostForm.Get("scope")), " ")
	at := p.accessToken(p.now(), sub, c.ID, p.audience(r, c.ID), scope, p.cfg.AccessTokenLifetime)
	p.mu.Lock()
	p.ccTokens[at] = c.ID
	p.mu.Unlock()
	return &tokenResponse{AccessToken: at, TokenType: "Bearer", ExpiresIn: seconds(p.cfg.AccessTokenLifetime), Scope: scope}, nil
}
