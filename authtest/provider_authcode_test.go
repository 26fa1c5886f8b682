package authtest

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authkit-go/authkit/auth"
)

// app is the application side of the browser flow: a loopback server that
// records the redirects it receives.
type app struct {
	srv  *httptest.Server
	mu   sync.Mutex
	got  []url.Values
	path string
}

func newApp(t *testing.T, path string) *app {
	a := &app{path: path}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.got = append(a.got, r.URL.Query())
		a.mu.Unlock()
		w.Write([]byte("app page"))
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *app) redirectURI() string { return a.srv.URL + a.path }

func (a *app) last(t *testing.T) url.Values {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.got) == 0 {
		t.Fatal("the application received no redirect")
	}
	return a.got[len(a.got)-1]
}

const testVerifier = "dBjftJeZ4CVP-mJ92K9rtYdHw5rntkYxR2v1rVZeKxaQ"

func challenge(v string) string {
	sum := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func authorizeURL(p *Provider, clientID, redirect string, extra ...string) string {
	q := url.Values{
		"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirect},
		"scope": {"openid offline_access"}, "state": {"st-1"}, "nonce": {"n-1"},
		"code_challenge": {challenge(testVerifier)}, "code_challenge_method": {"S256"},
	}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == "" {
			q.Del(extra[i])
		} else {
			q.Set(extra[i], extra[i+1])
		}
	}
	return p.AuthorizationURL() + "?" + q.Encode()
}

// login runs the browser part and returns the code the app received.
func login(t *testing.T, p *Provider, a *app, extra ...string) string {
	t.Helper()
	b := p.NewBrowser("ada", "lovelace")
	if err := b.Open(context.Background(), authorizeURL(p, "cli", a.redirectURI(), extra...)); err != nil {
		t.Fatal(err)
	}
	q := a.last(t)
	if q.Get("state") != "st-1" || q.Get("code") == "" || q.Get("iss") != p.Issuer() {
		t.Fatalf("redirect query = %v, want code, state st-1 and iss", q)
	}
	return q.Get("code")
}

func exchange(t *testing.T, p *Provider, a *app, code, verifier string, kv ...string) answer {
	t.Helper()
	f := form("grant_type", "authorization_code", "client_id", "cli", "code", code, "redirect_uri", a.redirectURI(), "code_verifier", verifier)
	for i := 0; i+1 < len(kv); i += 2 {
		f.Set(kv[i], kv[i+1])
	}
	return post(t, p, EndpointToken, f)
}

func TestAuthorizationCodeFlow(t *testing.T) {
	p, clk := newTestProvider(t, nil)
	a := newApp(t, "/callback")
	code := login(t, p, a)
	tok := exchange(t, p, a, code, testVerifier)
	wantTokens(t, tok, true, true)
	id := claims(t, p, clk, tok.str("id_token"))
	if id["nonce"] != "n-1" || id["sub"] != "ada" || id["aud"] != "cli" {
		t.Errorf("ID token claims = %v, want nonce n-1, sub ada, aud cli", id)
	}
	if n := p.GrantRequests(GrantAuthorizationCode); n != 1 {
		t.Errorf("GrantRequests(authorization_code) = %d", n)
	}
}

func TestAuthorizationCodeExchangeRefusals(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, p *Provider, a *app, code string) answer
		desc string
	}{
		{"wrong verifier", func(t *testing.T, p *Provider, a *app, code string) answer {
			return exchange(t, p, a, code, "another-verifier-of-enough-length-0123456789")
		}, descPKCEMismatch},
		{"no verifier", func(t *testing.T, p *Provider, a *app, code string) answer {
			return exchange(t, p, a, code, "")
		}, descPKCEMismatch},
		{"other redirect URI", func(t *testing.T, p *Provider, a *app, code string) answer {
			return exchange(t, p, a, code, testVerifier, "redirect_uri", a.redirectURI()+"x")
		}, descCodeRedirectURI},
		{"other client", func(t *testing.T, p *Provider, a *app, code string) answer {
			return exchange(t, p, a, code, testVerifier, "client_id", "post", "client_secret", "p0st")
		}, descCodeWrongClient},
		{"unknown code", func(t *testing.T, p *Provider, a *app, _ string) answer {
			return exchange(t, p, a, "not-a-code", testVerifier)
		}, descCodeInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _ := newTestProvider(t, nil)
			a := newApp(t, "/callback")
			code := login(t, p, a)
			wantError(t, tt.run(t, p, a, code), 400, "invalid_grant", tt.desc)
		})
	}
	t.Run("expired", func(t *testing.T) {
		p, clk := newTestProvider(t, nil)
		a := newApp(t, "/callback")
		code := login(t, p, a)
		clk.Advance(authorizationCodeLifetime)
		wantError(t, exchange(t, p, a, code, testVerifier), 400, "invalid_grant", descCodeExpired)
	})
	t.Run("reused code revokes its login", func(t *testing.T) {
		p, _ := newTestProvider(t, nil)
		a := newApp(t, "/callback")
		code := login(t, p, a)
		first := exchange(t, p, a, code, testVerifier)
		wantTokens(t, first, true, true)
		wantError(t, exchange(t, p, a, code, testVerifier), 400, "invalid_grant", descCodeReused)
		r := post(t, p, EndpointToken, form("grant_type", "refresh_token", "client_id", "cli", "refresh_token", first.str("refresh_token")))
		if r.status != 400 || r.str("error") != "invalid_grant" {
			t.Errorf("refresh after the code came back: %d %s, want invalid_grant", r.status, r.raw)
		}
	})
}

func TestAuthorizationRequestRefusals(t *testing.T) {
	p, _ := newTestProvider(t, func(c *ProviderConfig) {
		c.Clients = append(c.Clients, Client{ID: "fixed", RedirectURIs: []string{"https://app.example/cb"}})
	})
	a := newApp(t, "/callback")
	open := func(u string) Page {
		b := p.NewBrowser("ada", "lovelace")
		_ = b.Open(context.Background(), u)
		return b.LastPage()
	}
	// Errors about the client or the redirect URI stay on the provider.
	for _, tt := range []struct{ name, url, want string }{
		{"unknown client", authorizeURL(p, "nobody", a.redirectURI()), descClientUnknown},
		{"unregistered path", authorizeURL(p, "cli", a.srv.URL+"/elsewhere"), descRedirectURIInvalid},
		{"not loopback", authorizeURL(p, "cli", "http://app.example/callback"), descRedirectURIInvalid},
		{"registered URI with another port", authorizeURL(p, "fixed", "https://app.example:8443/cb"), descRedirectURIInvalid},
	} {
		t.Run(tt.name, func(t *testing.T) {
			page := open(tt.url)
			if page.Status != 400 || !strings.Contains(page.Body, tt.want) {
				t.Errorf("page = %d %q, want 400 %q", page.Status, page.Body, tt.want)
			}
		})
	}
	// Other errors go back to the application, with the state.
	for _, tt := range []struct{ name, code, desc string }{
		{"no PKCE", "invalid_request", descPKCERequired},
		{"plain PKCE", "invalid_request", descPKCERequired},
		{"token response type", "unsupported_response_type", descUnsupportedResponse},
	} {
		t.Run(tt.name, func(t *testing.T) {
			extra := map[string][]string{
				"no PKCE":             {"code_challenge", ""},
				"plain PKCE":          {"code_challenge_method", "plain"},
				"token response type": {"response_type", "token"},
			}[tt.name]
			open(authorizeURL(p, "cli", a.redirectURI(), extra...))
			q := a.last(t)
			if q.Get("error") != tt.code || q.Get("error_description") != tt.desc || q.Get("state") != "st-1" || q.Get("code") != "" {
				t.Errorf("redirect = %v, want error %s with the state", q, tt.code)
			}
		})
	}
}

// TestLoopbackRedirectAnyPort: a registered loopback redirect URI matches
// any port (RFC 8252 7.3), on 127.0.0.1 and [::1] alike.
func TestLoopbackRedirectAnyPort(t *testing.T) {
	c := Client{ID: "cli"}
	for uri, want := range map[string]bool{
		"http://127.0.0.1:49152/callback":   true,
		"http://127.0.0.1/callback":         true,
		"http://[::1]:8080/callback":        true,
		"http://localhost:3000/callback":    true,
		"http://127.0.0.1:49152/callback/x": false,
		"http://127.0.0.1:49152/":           false,
		"https://127.0.0.1:49152/callback":  false,
		"http://127.0.0.2:49152/callback":   false,
		"http://evil.example/callback":      false,
		"http://127.0.0.1:1/callback#frag":  false,
		"http://u:p@127.0.0.1:1/callback":   false,
	} {
		if got := redirectAllowed(c, uri); got != want {
			t.Errorf("redirectAllowed(%s) = %v, want %v", uri, got, want)
		}
	}
}

func TestLoginForm(t *testing.T) {
	p, clk := newTestProvider(t, nil)
	a := newApp(t, "/callback")
	t.Run("wrong password shows the form again", func(t *testing.T) {
		b := p.NewBrowser("ada", "wrong")
		err := b.Open(context.Background(), authorizeURL(p, "cli", a.redirectURI()))
		if err == nil || !strings.Contains(err.Error(), descInvalidCredentials) {
			t.Fatalf("err = %v", err)
		}
		if page := b.LastPage(); page.Status != http.StatusUnauthorized || !strings.Contains(page.Body, descInvalidCredentials) {
			t.Errorf("page = %d %q", page.Status, page.Body)
		}
	})
	t.Run("deny", func(t *testing.T) {
		b := p.NewBrowser("ada", "lovelace")
		b.Deny = true
		if err := b.Open(context.Background(), authorizeURL(p, "cli", a.redirectURI())); err != nil {
			t.Fatal(err)
		}
		if q := a.last(t); q.Get("error") != "access_denied" || q.Get("state") != "st-1" {
			t.Errorf("redirect = %v, want access_denied", q)
		}
	})
	t.Run("expired page", func(t *testing.T) {
		b := p.NewBrowser("ada", "lovelace")
		page, err := b.get(context.Background(), authorizeURL(p, "cli", a.redirectURI()))
		if err != nil {
			t.Fatal(err)
		}
		id := requestField.FindStringSubmatch(page.Body)[1]
		clk.Advance(loginPageLifetime + time.Second)
		r := post(t, p, EndpointAuthorize, form("request", id, "username", "ada", "password", "lovelace", "action", "login"))
		if r.status != 400 || !strings.Contains(r.raw, descLoginPageExpired) {
			t.Errorf("late submit = %d %q", r.status, r.raw)
		}
	})
}

// A browser that cannot reach the application says which page it could not load
// without the query, which carries the code.
func TestBrowserErrorHidesTheCode(t *testing.T) {
	p, _ := newTestProvider(t, nil)
	a := newApp(t, "/callback")
	redirect := a.redirectURI()
	a.srv.Close() // the application is gone
	b := p.NewBrowser("ada", "lovelace")
	err := b.Open(context.Background(), authorizeURL(p, "cli", redirect))
	if err == nil {
		t.Fatal("no error")
	}
	u, _ := url.Parse(redirect)
	if msg := err.Error(); strings.Contains(msg, "code=") || strings.Contains(msg, "st-1") || !strings.Contains(msg, "loading http://"+u.Host+"/callback: ") {
		t.Errorf("error = %q, want the method and URL without the query", msg)
	}
}

// TestAuthorizationCodeBoundToDPoPKey: a code requested with dpop_jkt
// (RFC 9449 §10) is exchanged only with a proof of that key: without a
// proof, or with another key's, invalid_dpop_proof; with it, a DPoP token.
func TestAuthorizationCodeBoundToDPoPKey(t *testing.T) {
	p := NewProvider(ProviderConfig{Users: []User{{Username: "ada", Password: "lovelace"}}, Clients: []Client{{ID: "cli"}}})
	defer p.Close()
	a := newApp(t, "/callback")
	key, _ := auth.NewDPoPKey(nil)
	other, _ := auth.NewDPoPKey(nil)
	proof := func(k *auth.DPoPKey) string {
		s, err := k.Proof(http.MethodPost, p.TokenURL(), "", "", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, tt := range []struct {
		name  string
		proof string
		ok    bool
	}{{"no proof", "", false}, {"another key", proof(other), false}, {"the bound key", proof(key), true}} {
		t.Run(tt.name, func(t *testing.T) {
			code := login(t, p, a, "dpop_jkt", key.Thumbprint())
			form := url.Values{"grant_type": {GrantAuthorizationCode}, "code": {code}, "redirect_uri": {a.redirectURI()},
				"code_verifier": {testVerifier}, "client_id": {"cli"}}
			req, _ := http.NewRequest(http.MethodPost, p.TokenURL(), strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tt.proof != "" {
				req.Header.Set("DPoP", tt.proof)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var out struct {
				Error     string `json:"error"`
				TokenType string `json:"token_type"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&out)
			if tt.ok && (resp.StatusCode != 200 || out.TokenType != "DPoP") {
				t.Errorf("HTTP %d %+v, want a DPoP token", resp.StatusCode, out)
			}
			if !tt.ok && (resp.StatusCode != 400 || out.Error != "invalid_dpop_proof") {
				t.Errorf("HTTP %d %+v, want invalid_dpop_proof", resp.StatusCode, out)
			}
		})
	}
}
