package interop

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/authtest"
	"github.com/authkit-go/authkit/handlers"
	"github.com/authkit-go/authkit/internal/jwks"
)

// envChromium names the Chromium binary; interop/run.sh installs it from
// Debian's packages and sets it.
const envChromium = "AUTHKIT_CHROMIUM"

// The browser-login clients: oidc-provider's in server.mjs, Dex's in
// dex/config.yaml.in.
const (
	oidcWebID    = "authkit-web"
	dexBrowserID = "authkit-browser"
)

// chromium starts one headless Chromium for the test, with the flags
// IDP.md asks for and a fresh profile, and returns its context; every login
// opens a tab of its own in it.
func chromium(t *testing.T) context.Context {
	t.Helper()
	path := os.Getenv(envChromium)
	if path == "" {
		t.Skipf("%s is not set: run the real-browser tests with `bash interop/run.sh`", envChromium)
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	t.Cleanup(cancel)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(bcancel)
	start := time.Now()
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("starting Chromium (%s): %v", path, err)
	}
	t.Logf("Chromium started in %v", time.Since(start).Round(time.Millisecond))
	return bctx
}

// person is what a person does in the browser with the authorization URL
// the handler opened.
type person func(tab context.Context, authURL string) error

// at opens authURL, then lets p act on the login page.
func at(p func(tab context.Context) error) person {
	return func(tab context.Context, authURL string) error {
		if err := chromedp.Do(tab, chromedp.Navigate(authURL)); err != nil {
			return err
		}
		return p(tab)
	}
}

// landing is what the browser shows at the end.
type landing struct {
	URL, Title, Detail, Body string
}

// browserRun is one login through Chromium: the handler's opener starts
// the person in a new tab, as a real opener returns at once.
type browserRun struct {
	browser context.Context
	do      person

	mu   sync.Mutex
	tab  context.Context
	errc chan error
}

func (r *browserRun) open(_ context.Context, authURL string) error {
	// A browser context of its own: no cookies, so no provider session
	// from an earlier case logs this person in without the login page.
	// Closed with the browser.
	tab, _ := chromedp.NewContext(r.browser, chromedp.WithNewBrowserContext())
	r.mu.Lock()
	r.tab = tab
	r.mu.Unlock()
	go func() {
		// The tab's first Run binds the tab's life to its ctx: open it
		// without the person's timeout, which would close it.
		if err := chromedp.Do(tab); err != nil {
			r.errc <- err
			return
		}
		// A person who gets stuck on a page is a failure, not a hang.
		ctx, cancel := context.WithTimeout(tab, 45*time.Second)
		defer cancel()
		r.errc <- r.do(ctx, authURL)
	}()
	return nil
}

// page reads the page the tab shows.
func (r *browserRun) page(t *testing.T) landing {
	t.Helper()
	if err := <-r.errc; err != nil {
		t.Fatalf("the person in the browser: %v", err)
	}
	r.mu.Lock()
	tab := r.tab
	r.mu.Unlock()
	var l landing
	ctx, cancel := context.WithTimeout(tab, 20*time.Second)
	defer cancel()
	err := chromedp.Do(ctx, chromedp.WaitReady(chromedp.CSS("body")))
	if err == nil {
		l.URL, err = chromedp.Run(ctx, chromedp.Location())
	}
	if err == nil {
		l.Body, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	}
	if err != nil {
		t.Fatalf("reading the landing page: %v", err)
	}
	l.Title, l.Detail, _ = strings.Cut(strings.TrimSpace(l.Body), "\n")
	return l
}

// The people at the two providers' login pages.

// dexLogin fills Dex's local password form.
func dexLogin(tab context.Context) error {
	return chromedp.Do(tab,
		chromedp.WaitVisible(chromedp.CSS(`input[name="login"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="login"]`), userEmail),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), userPassword),
		chromedp.Submit(chromedp.CSS(`input[name="password"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#title`)),
	)
}

// oidcLogin fills server.mjs's interaction form for oidc-provider.
func oidcLogin(tab context.Context) error {
	return chromedp.Do(tab,
		chromedp.WaitVisible(chromedp.CSS(`#login input[name="login"]`)),
		chromedp.SendKeys(chromedp.CSS(`#login input[name="login"]`), userLogin),
		chromedp.SendKeys(chromedp.CSS(`#login input[name="password"]`), userPassword),
		chromedp.Submit(chromedp.CSS(`#login input[name="password"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#title`)),
	)
}

// oidcCancel presses Cancel on oidc-provider's login page.
func oidcCancel(tab context.Context) error {
	return chromedp.Do(tab,
		chromedp.WaitVisible(chromedp.CSS(`#abort button`)),
		chromedp.Click(chromedp.CSS(`#abort button`)),
		chromedp.WaitVisible(chromedp.CSS(`#title`)),
	)
}

// closePage is a person who closes the login page without logging in.
func closePage(tab context.Context) error {
	return chromedp.Cancel(tab)
}

// forgedFirst is a person whose browser first delivers a forged redirect
// to the loopback server (as a malicious page could), then logs in.
func forgedFirst(login person, forged *landing) person {
	return func(tab context.Context, authURL string) error {
		u, err := url.Parse(authURL)
		if err != nil {
			return err
		}
		redirect := u.Query().Get("redirect_uri")
		if err := chromedp.Do(tab, chromedp.Navigate(redirect+"?code=attacker-code&state=forged")); err != nil {
			return err
		}
		if forged.Body, err = chromedp.Run(tab, chromedp.Text(chromedp.CSS("body"))); err != nil {
			return err
		}
		return login(tab, authURL)
	}
}

// provider is one real provider's side of the browser tests.
type browserProvider struct {
	name     string
	issuer   func(testing.TB) string
	clientID string
	login    person
	user     string // the username the ID token names
	claim    string
}

func browserProviders() []browserProvider {
	return []browserProvider{
		{name: "dex", issuer: dexIssuer, clientID: dexBrowserID, login: at(dexLogin), user: userEmail, claim: "email"},
		{name: "oidc-provider", issuer: oidcIssuer, clientID: oidcWebID, login: at(oidcLogin), user: userLogin, claim: "sub"},
	}
}

func newBrowserLogin(t *testing.T, p browserProvider, run *browserRun, logs *authtest.LogBuffer, mod func(*handlers.BrowserLoginConfig)) *handlers.BrowserLogin {
	t.Helper()
	cfg := handlers.BrowserLoginConfig{
		OAuthConfig: handlers.OAuthConfig{
			Endpoints: handlers.Endpoints{Issuer: p.issuer(t)},
			ClientID:  p.clientID,
			Scopes:    []string{"openid", "profile", "email", "offline_access"},
			Logger:    slog.New(slog.NewTextHandler(logs, nil)),
		},
		UsernameClaim: p.claim,
		OpenBrowser:   run.open,
		Output:        logs,
	}
	if mod != nil {
		mod(&cfg)
	}
	h, err := handlers.NewBrowserLogin(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// TestBrowserLogin drives a real headless Chromium through each provider's
// own login page to the handler's loopback server.
func TestBrowserLogin(t *testing.T) {
	for _, p := range browserProviders() {
		t.Run(p.name, func(t *testing.T) {
			iss := p.issuer(t)
			b := chromium(t)
			start := time.Now()
			defer func() { t.Logf("%s: real-browser cases took %v", p.name, time.Since(start).Round(time.Millisecond)) }()

			t.Run("default landing page", func(t *testing.T) {
				run := &browserRun{browser: b, do: p.login, errc: make(chan error, 1)}
				logs := &authtest.LogBuffer{}
				h := newBrowserLogin(t, p, run, logs, nil)
				began := time.Now()
				mustf(t, h.Authenticate(testContext(t)), "Authenticate (log: %s)", logs)
				t.Logf("login took %v", time.Since(began).Round(time.Millisecond))
				page := run.page(t)
				if page.Title != "Logged in" || !strings.Contains(page.Detail, p.user) || !strings.HasPrefix(page.URL, "http://127.0.0.1:") {
					t.Errorf("landing page %s: %q / %q", page.URL, page.Title, page.Detail)
				}
				if h.Username() != p.user {
					t.Errorf("Username() = %q, want %q", h.Username(), p.user)
				}
				checkToken(t, p, iss, bearer(t, h))
			})

			t.Run("custom landing page redirects", func(t *testing.T) {
				welcome := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					fmt.Fprintf(w, "<html><body><h1 id=\"title\">Welcome, %s</h1></body></html>", r.URL.Query().Get("user"))
				}))
				defer welcome.Close()
				run := &browserRun{browser: b, do: p.login, errc: make(chan error, 1)}
				logs := &authtest.LogBuffer{}
				h := newBrowserLogin(t, p, run, logs, func(c *handlers.BrowserLoginConfig) {
					c.Landing = func(w http.ResponseWriter, r *http.Request, o handlers.LoginOutcome) {
						http.Redirect(w, r, welcome.URL+"/?user="+url.QueryEscape(o.Username), http.StatusFound)
					}
				})
				mustf(t, h.Authenticate(testContext(t)), "Authenticate (log: %s)", logs)
				page := run.page(t)
				if !strings.HasPrefix(page.URL, welcome.URL) || page.Title != "Welcome, "+p.user {
					t.Errorf("ended at %s: %q, want the welcome page", page.URL, page.Body)
				}
			})

			t.Run("the person closes the page", func(t *testing.T) {
				run := &browserRun{browser: b, do: at(closePage), errc: make(chan error, 1)}
				logs := &authtest.LogBuffer{}
				h := newBrowserLogin(t, p, run, logs, nil)
				ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
				defer cancel()
				err := h.Authenticate(ctx)
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("err = %v, want the ctx's deadline", err)
				}
				if h.Authenticated() {
					t.Error("authenticated")
				}
			})

			t.Run("a forged state on the loopback is refused", func(t *testing.T) {
				var forged landing
				run := &browserRun{browser: b, errc: make(chan error, 1)}
				run.do = forgedFirst(p.login, &forged)
				logs := &authtest.LogBuffer{}
				h := newBrowserLogin(t, p, run, logs, nil)
				mustf(t, h.Authenticate(testContext(t)), "Authenticate after a forged redirect (log: %s)", logs)
				if page := run.page(t); page.Title != "Logged in" {
					t.Errorf("landing page %q", page.Body)
				}
				if !strings.Contains(forged.Body, "does not belong to the login in progress") {
					t.Errorf("the forged redirect got %q", forged.Body)
				}
				if !strings.Contains(logs.String(), "refused a redirect whose state") {
					t.Errorf("the forged redirect was not logged: %s", logs)
				}
			})

			if p.name == "oidc-provider" {
				t.Run("the person cancels: access_denied", func(t *testing.T) {
					run := &browserRun{browser: b, do: at(oidcCancel), errc: make(chan error, 1)}
					logs := &authtest.LogBuffer{}
					h := newBrowserLogin(t, p, run, logs, nil)
					err := h.Authenticate(testContext(t))
					if !errors.Is(err, auth.ErrAccessDenied) {
						t.Fatalf("err = %v, want auth.ErrAccessDenied", err)
					}
					if page := run.page(t); page.Title != "Login failed" || !strings.Contains(page.Detail, "denied") {
						t.Errorf("landing page %q", page.Body)
					}
				})
			}
		})
	}
}

// checkToken checks that the access token is the provider's: Dex's is a
// JWT verified here against Dex's JWKS; oidc-provider's is opaque and
// checked by its introspection endpoint.
func checkToken(t *testing.T, p browserProvider, iss, tok string) {
	t.Helper()
	if p.name == "oidc-provider" {
		in := introspect(t, iss, tok, oidcCCID, oidcCCSecret)
		if in["active"] != true || in["sub"] != userLogin || in["client_id"] != oidcWebID {
			t.Errorf("introspection = %v", in)
		}
		return
	}
	d := discover(t, iss)
	ks, err := jwks.NewKeySet(jwks.Config{URL: d.JWKSURI})
	if err != nil {
		t.Fatal(err)
	}
	defer ks.Close()
	v, err := jwks.NewVerifier(jwks.VerifierConfig{KeySet: ks})
	if err != nil {
		t.Fatal(err)
	}
	claims := jwt.MapClaims{}
	if _, err := v.Parse(testContext(t), tok, claims, jwt.WithIssuer(iss), jwt.WithExpirationRequired()); err != nil {
		t.Fatalf("Dex's access token does not verify against its JWKS: %v", err)
	}
	if claims["email"] != userEmail {
		t.Errorf("access token claims = %v", claims)
	}
}
