package authtest

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"html/template"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// GrantAuthorizationCode is the authorization code grant
// (https://www.rfc-editor.org/rfc/rfc6749#section-4.1), with PKCE
// (https://www.rfc-editor.org/rfc/rfc7636) required.
const GrantAuthorizationCode = "authorization_code"

// Lifetimes of the browser flow's intermediate values.
const (
	// authorizationCodeLifetime is how long an authorization code may be
	// exchanged (https://www.rfc-editor.org/rfc/rfc6749#section-4.1.2
	// recommends at most 10 minutes).
	authorizationCodeLifetime = time.Minute
	// loginPageLifetime is how long a login page may be submitted.
	loginPageLifetime = 10 * time.Minute
)

// Error descriptions of the browser flow.
const (
	descRedirectURIInvalid  = "redirect_uri is not registered for this client"
	descPKCERequired        = "PKCE with code_challenge_method S256 is required"
	descPKCEMismatch        = "code_verifier does not match the code_challenge"
	descCodeInvalid         = "invalid authorization code"
	descCodeReused          = "authorization code already used; the tokens issued for it are revoked"
	descCodeExpired         = "authorization code expired"
	descCodeRedirectURI     = "redirect_uri differs from the authorization request's"
	descCodeWrongClient     = "authorization code issued to another client"
	descLoginPageExpired    = "the login page expired; start again"
	descUnsupportedResponse = "response_type must be code"
)

// defaultRedirectURIs are the redirect URIs of a client that registers
// none: the loopback redirect of a native app
// (https://www.rfc-editor.org/rfc/rfc8252#section-7.3), any port.
var defaultRedirectURIs = []string{"http://127.0.0.1/callback", "http://[::1]/callback", "http://localhost/callback"}

// authRequest is an authorization request waiting for its login form.
type authRequest struct {
	clientID    string
	redirectURI string
	state       string
	nonce       string
	challenge   string
	scope       string
	audience    string
	dpopJKT     string // dpop_jkt: the key the code is bound to (RFC 9449 §10)
	expires     time.Time
}

// authCode is an issued authorization code.
type authCode struct {
	req      *authRequest
	username string
	expires  time.Time
	used     bool
	sess     *session // the login its exchange started, revoked if the code comes back
}

// redirectAllowed reports whether uri may receive c's codes: equal to a
// registered URI, except that a loopback http URI may name any port
// (https://www.rfc-editor.org/rfc/rfc8252#section-7.3).
func redirectAllowed(c Client, uri string) bool {
	registered := c.RedirectURIs
	if registered == nil {
		registered = defaultRedirectURIs
	}
	u, err := url.Parse(uri)
	if err != nil || u.Fragment != "" || u.User != nil {
		return false
	}
	for _, r := range registered {
		if r == uri {
			return true
		}
		ru, err := url.Parse(r)
		if err != nil || ru.Scheme != "http" || u.Scheme != "http" || !loopbackHost(ru.Hostname()) {
			continue
		}
		if ru.Hostname() == u.Hostname() && ru.EscapedPath() == u.EscapedPath() && ru.RawQuery == u.RawQuery {
			return true
		}
	}
	return false
}

func loopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// serveAuthorize is the authorization endpoint
// (https://www.rfc-editor.org/rfc/rfc6749#section-3.1): a GET shows the
// login form, its POST logs the user in (consent is granted at once) or
// denies, and redirects to the client with a code or an error.
func (p *Provider) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	if p.applyFaults(w, r.URL.Path) {
		return
	}
	switch r.Method {
	case http.MethodGet:
		p.authorizeRequest(w, r)
	case http.MethodPost:
		p.authorizeLogin(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// authorizeRequest checks an authorization request and answers the login
// form. Errors about the client or the redirect URI are shown on a page:
// an unchecked redirect URI never receives anything
// (https://www.rfc-editor.org/rfc/rfc6749#section-4.1.2.1).
func (p *Provider) authorizeRequest(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p.mu.Lock()
	c, known := p.clients[q.Get("client_id")]
	p.mu.Unlock()
	if !known {
		errorPage(w, http.StatusBadRequest, descClientUnknown)
		return
	}
	redirect := q.Get("redirect_uri")
	if !redirectAllowed(c, redirect) {
		errorPage(w, http.StatusBadRequest, descRedirectURIInvalid)
		return
	}
	fail := func(code, desc string) { redirectError(w, r, redirect, q.Get("state"), code, desc) }
	switch {
	case q.Get("response_type") != "code":
		fail("unsupported_response_type", descUnsupportedResponse)
		return
	case c.Grants != nil && !slices.Contains(c.Grants, GrantAuthorizationCode):
		fail("unauthorized_client", "the client may not use the authorization code grant")
		return
	case q.Get("code_challenge") == "" || q.Get("code_challenge_method") != "S256":
		fail("invalid_request", descPKCERequired)
		return
	}
	aud := p.cfg.Audience
	if aud == "" {
		aud = q.Get("audience")
	}
	if aud == "" {
		aud = c.ID
	}
	req := &authRequest{
		clientID: c.ID, redirectURI: redirect, state: q.Get("state"), nonce: q.Get("nonce"),
		challenge: q.Get("code_challenge"), scope: q.Get("scope"), audience: aud, dpopJKT: q.Get("dpop_jkt"),
		expires: p.now().Add(loginPageLifetime),
	}
	id := randomString(24)
	p.mu.Lock()
	p.authRequests[id] = req
	p.mu.Unlock()
	p.loginPage(w, id, "")
}

// authorizeLogin handles the submitted login form.
func (p *Provider) authorizeLogin(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		errorPage(w, http.StatusBadRequest, "malformed form")
		return
	}
	id := r.PostForm.Get("request")
	p.mu.Lock()
	req, ok := p.authRequests[id]
	if ok && !p.now().Before(req.expires) {
		delete(p.authRequests, id)
		ok = false
	}
	p.mu.Unlock()
	if !ok {
		errorPage(w, http.StatusBadRequest, descLoginPageExpired)
		return
	}
	if r.PostForm.Get("action") == "deny" {
		p.mu.Lock()
		delete(p.authRequests, id)
		p.mu.Unlock()
		redirectError(w, r, req.redirectURI, req.state, "access_denied", descAuthorizationDenied)
		return
	}
	username := r.PostForm.Get("username")
	p.mu.Lock()
	u, known := p.users[username]
	p.mu.Unlock()
	if !known || subtle.ConstantTimeCompare([]byte(u.Password), []byte(r.PostForm.Get("password"))) != 1 {
		p.loginPage(w, id, descInvalidCredentials)
		return
	}
	code := randomString(32)
	p.mu.Lock()
	delete(p.authRequests, id)
	p.authCodes[code] = &authCode{req: req, username: username, expires: p.now().Add(authorizationCodeLifetime)}
	p.mu.Unlock()
	v := url.Values{"code": {code}, "iss": {p.Issuer()}}
	if req.state != "" {
		v.Set("state", req.state)
	}
	http.Redirect(w, r, withQuery(req.redirectURI, v), http.StatusFound)
}

// codeGrant exchanges an authorization code
// (https://www.rfc-editor.org/rfc/rfc6749#section-4.1.3) after checking
// its client, redirect URI and PKCE verifier
// (https://www.rfc-editor.org/rfc/rfc7636#section-4.6). A code that comes
// back revokes the login its first exchange started
// (https://www.rfc-editor.org/rfc/rfc6749#section-4.1.2).
func (p *Provider) codeGrant(r *http.Request, c Client) (*tokenResponse, *oauthErr) {
	code := r.PostForm.Get("code")
	p.mu.Lock()
	ac, ok := p.authCodes[code]
	switch {
	case !ok:
		p.mu.Unlock()
		return nil, badRequest("invalid_grant", descCodeInvalid)
	case ac.used:
		if ac.sess != nil {
			ac.sess.revoked = true
		}
		p.mu.Unlock()
		return nil, badRequest("invalid_grant", descCodeReused)
	case !p.now().Before(ac.expires):
		p.mu.Unlock()
		return nil, badRequest("invalid_grant", descCodeExpired)
	case ac.req.clientID != c.ID:
		p.mu.Unlock()
		return nil, badRequest("invalid_grant", descCodeWrongClient)
	case r.PostForm.Get("redirect_uri") != ac.req.redirectURI:
		p.mu.Unlock()
		return nil, badRequest("invalid_grant", descCodeRedirectURI)
	}
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	if base64.RawURLEncoding.EncodeToString(sum[:]) != ac.req.challenge {
		p.mu.Unlock()
		return nil, badRequest("invalid_grant", descPKCEMismatch)
	}
	if ac.req.dpopJKT != "" && ac.req.dpopJKT != provenJKT(r) {
		// https://www.rfc-editor.org/rfc/rfc9449#section-10.1
		p.mu.Unlock()
		return nil, badRequest("invalid_dpop_proof", "the code is bound to dpop_jkt; prove possession of that key")
	}
	ac.used = true
	p.mu.Unlock()
	resp, sess := p.loginSession(ac.username, c.ID, ac.req.scope, ac.req.audience, ac.req.nonce)
	p.mu.Lock()
	ac.sess = sess
	p.mu.Unlock()
	return resp, nil
}

var loginTemplate = template.Must(template.New("login").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>authtest login</title></head>
<body>
<h1>Log in to authtest</h1>
{{if .Error}}<p id="error">{{.Error}}</p>{{end}}
<form method="post" action="{{.Action}}">
<input type="hidden" name="request" value="{{.Request}}">
<label>Username <input id="username" name="username" autocomplete="username"></label>
<label>Password <input id="password" name="password" type="password" autocomplete="current-password"></label>
<button id="login" type="submit" name="action" value="login">Log in</button>
<button id="deny" type="submit" name="action" value="deny">Deny</button>
</form>
</body></html>
`))

// loginPage answers the login form of authorization request id.
func (p *Provider) loginPage(w http.ResponseWriter, id, problem string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	status := http.StatusOK
	if problem != "" {
		status = http.StatusUnauthorized
	}
	w.WriteHeader(status)
	_ = loginTemplate.Execute(w, struct{ Action, Request, Error string }{EndpointAuthorize, id, problem})
}

func errorPage(w http.ResponseWriter, status int, desc string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte("authtest: " + desc + "\n"))
}

// redirectError sends an error to the client's redirect URI
// (https://www.rfc-editor.org/rfc/rfc6749#section-4.1.2.1).
func redirectError(w http.ResponseWriter, r *http.Request, redirect, state, code, desc string) {
	v := url.Values{"error": {code}, "error_description": {desc}}
	if state != "" {
		v.Set("state", state)
	}
	http.Redirect(w, r, withQuery(redirect, v), http.StatusFound)
}

func withQuery(uri string, v url.Values) string {
	if strings.Contains(uri, "?") {
		return uri + "&" + v.Encode()
	}
	return uri + "?" + v.Encode()
}
