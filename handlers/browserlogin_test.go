package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/authtest"
)

// browserSetup is a browser-login handler against an authtest provider,
// with authtest's Browser as the person at the browser.
type browserSetup struct {
	clk     *authtest.Clock
	p       *authtest.Provider
	rec     *recorder
	browser *authtest.Browser
	h       *BrowserLogin
	out     *authtest.LogBuffer
	logs    *authtest.LogBuffer
}

func newBrowserSetup(t *testing.T, mod func(*BrowserLoginConfig), pmods ...func(*authtest.ProviderConfig)) *browserSetup {
	t.Helper()
	clk := authtest.NewClock(time.Time{})
	return newBrowserSetupOn(t, clk, newProvider(t, clk, pmods...), mod)
}

// newBrowserSetupOn is newBrowserSetup against an existing provider.
func newBrowserSetupOn(t *testing.T, clk *authtest.Clock, p *authtest.Provider, mod func(*BrowserLoginConfig)) *browserSetup {
	t.Helper()
	s := &browserSetup{clk: clk, p: p, out: &authtest.LogBuffer{}, logs: &authtest.LogBuffer{}}
	s.rec = &recorder{clk: s.clk}
	s.browser = s.p.NewBrowser("ada", adaPass)
	cfg := BrowserLoginConfig{
		OAuthConfig: OAuthConfig{
			Endpoints:  Endpoints{Issuer: s.p.Issuer()},
			ClientID:   "cli",
			HTTPClient: s.rec.client(),
			Clock:      s.clk,
			Logger:     slog.New(slog.NewTextHandler(s.logs, nil)),
		},
		OpenBrowser: s.browser.Open,
		Output:      s.out,
	}
	if mod != nil {
		mod(&cfg)
	}
	h, err := NewBrowserLogin(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	s.h = h
	return s
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// authParams returns the query of the authorization URL the handler printed.
func (s *browserSetup) authParams(t *testing.T) url.Values {
	t.Helper()
	for _, f := range strings.Fields(s.out.String()) {
		if strings.HasPrefix(f, s.p.AuthorizationURL()) {
			u, err := url.Parse(f)
			if err != nil {
				t.Fatal(err)
			}
			return u.Query()
		}
	}
	t.Fatalf("no authorization URL in the output %q", s.out.String())
	return nil
}

func TestBrowserLogin(t *testing.T) {
	s := newBrowserSetup(t, nil)
	if err := s.h.Authenticate(testCtx(t, 30*time.Second)); err != nil {
		t.Fatalf("Authenticate: %v (landing page: %+v)", err, s.browser.LastPage())
	}
	if got := s.h.Username(); got != "ada" {
		t.Errorf("Username() = %q, want ada", got)
	}
	hdr, err := s.h.HubRequestHeaders(t.Context())
	if err != nil || !strings.HasPrefix(hdr.Get("Authorization"), "Bearer ") {
		t.Fatalf("HubRequestHeaders = %v, %v", hdr, err)
	}

	// The authorization request (RFC 6749 4.1.1, RFC 7636, RFC 8252).
	q := s.authParams(t)
	redirect, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || redirect.Scheme != "http" || redirect.Hostname() != "127.0.0.1" || redirect.Port() == "" || redirect.Path != "/callback" {
		t.Errorf("redirect_uri = %q, want http://127.0.0.1:<port>/callback", q.Get("redirect_uri"))
	}
	for k, want := range map[string]string{"response_type": "code", "client_id": "cli", "code_challenge_method": "S256", "scope": "openid profile offline_access"} {
		if q.Get(k) != want {
			t.Errorf("%s = %q, want %q", k, q.Get(k), want)
		}
	}
	for _, k := range []string{"state", "nonce", "code_challenge"} {
		if len(q.Get(k)) < 43 {
			t.Errorf("%s = %q, want 256 random bits", k, q.Get(k))
		}
	}
	// The code exchange sends the same redirect URI and the verifier.
	ex := s.rec.to(authtest.EndpointToken)
	if len(ex) != 1 {
		t.Fatalf("%d token requests, want 1", len(ex))
	}
	f := ex[0].form
	if f.Get("grant_type") != "authorization_code" || f.Get("redirect_uri") != q.Get("redirect_uri") || f.Get("code_verifier") == "" || f.Get("code") == "" {
		t.Errorf("code exchange form = %v", f)
	}
	// The landing page says who logged in and shows no code.
	page := s.browser.LastPage()
	if page.Status != 200 || !strings.Contains(page.Body, "Logged in") || !strings.Contains(page.Body, "ada") {
		t.Errorf("landing page = %d %q", page.Status, page.Body)
	}
	if strings.Contains(page.Body, f.Get("code")) {
		t.Error("the landing page shows the authorization code")
	}
	// The loopback server is gone.
	if _, err := http.Get(q.Get("redirect_uri")); err == nil {
		t.Error("the loopback server still answers after the login")
	}
}

func TestBrowserLoginCustomLanding(t *testing.T) {
	welcome := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "welcome %s", r.URL.Query().Get("user"))
	}))
	defer welcome.Close()
	var got []LoginOutcome
	var mu sync.Mutex
	s := newBrowserSetup(t, func(c *BrowserLoginConfig) {
		c.Landing = func(w http.ResponseWriter, r *http.Request, o LoginOutcome) {
			mu.Lock()
			got = append(got, o)
			mu.Unlock()
			http.Redirect(w, r, welcome.URL+"/?user="+url.QueryEscape(o.Username), http.StatusFound)
		}
	})
	if err := s.h.Authenticate(testCtx(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	if page := s.browser.LastPage(); page.Body != "welcome ada" {
		t.Errorf("the browser ended on %q, want the welcome page", page.Body)
	}
	if len(got) != 1 || got[0].Username != "ada" || got[0].Err != nil {
		t.Errorf("outcomes = %+v", got)
	}
}

func TestBrowserLoginDenied(t *testing.T) {
	s := newBrowserSetup(t, nil)
	s.browser.Deny = true
	err := s.h.Authenticate(testCtx(t, 30*time.Second))
	if !errors.Is(err, auth.ErrAccessDenied) {
		t.Fatalf("err = %v, want auth.ErrAccessDenied", err)
	}
	var oe *auth.OAuthError
	if !errors.As(err, &oe) || oe.Code != "access_denied" {
		t.Errorf("err = %v, want the provider's access_denied", err)
	}
	if page := s.browser.LastPage(); page.Status != 400 || !strings.Contains(page.Body, "denied") {
		t.Errorf("landing page = %d %q", page.Status, page.Body)
	}
	if s.h.Authenticated() {
		t.Error("authenticated after a denied login")
	}
}

// tamper returns an opener that rewrites one parameter of the
// authorization URL before open opens it.
func tamper(open func(context.Context, string) error, key, value string) func(context.Context, string) error {
	return func(ctx context.Context, authURL string) error {
		u, err := url.Parse(authURL)
		if err != nil {
			return err
		}
		q := u.Query()
		q.Set(key, value)
		u.RawQuery = q.Encode()
		return open(ctx, u.String())
	}
}

func TestBrowserLoginRefusals(t *testing.T) {
	tests := []struct {
		name       string
		key, value string
		wantErr    error
		wantIn     string
	}{
		{"PKCE mismatch", "code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", auth.ErrInvalidGrant, "code_verifier does not match the code_challenge"},
		{"nonce mismatch", "nonce", "an-injected-nonce", ErrInvalidIDToken, "nonce"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newBrowserSetup(t, func(c *BrowserLoginConfig) { c.OpenBrowser = tamper(c.OpenBrowser, tt.key, tt.value) })
			err := s.h.Authenticate(testCtx(t, 30*time.Second))
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantIn) {
				t.Fatalf("err = %v, want %v mentioning %q", err, tt.wantErr, tt.wantIn)
			}
			if s.h.Authenticated() {
				t.Error("authenticated after a refused login")
			}
			if page := s.browser.LastPage(); page.Status != 400 || !strings.Contains(page.Body, "Login failed") {
				t.Errorf("landing page = %d %q", page.Status, page.Body)
			}
		})
	}
}

// TestBrowserLoginForgedState: a request to the loopback server with
// another state is refused and logged, and the login goes on to succeed.
func TestBrowserLoginForgedState(t *testing.T) {
	var forged *http.Response
	var s *browserSetup
	s = newBrowserSetup(t, func(c *BrowserLoginConfig) {
		c.OpenBrowser = func(ctx context.Context, authURL string) error {
			u, _ := url.Parse(authURL)
			redirect := u.Query().Get("redirect_uri")
			resp, err := http.Get(redirect + "?code=attacker-code&state=forged")
			if err != nil {
				return err
			}
			resp.Body.Close()
			forged = resp
			return s.browser.Open(ctx, authURL)
		}
	})
	if err := s.h.Authenticate(testCtx(t, 30*time.Second)); err != nil {
		t.Fatalf("Authenticate after a forged redirect: %v", err)
	}
	if forged == nil || forged.StatusCode != http.StatusBadRequest {
		t.Fatalf("forged redirect answered %v, want 400", forged)
	}
	if !strings.Contains(s.logs.String(), "state") {
		t.Errorf("the forged redirect was not logged: %q", s.logs.String())
	}
	for _, r := range s.rec.to(authtest.EndpointToken) {
		if r.form.Get("code") == "attacker-code" {
			t.Error("the forged code was exchanged")
		}
	}
}

// TestBrowserLoginWrongRedirectURI: a redirect URI the provider does not
// accept ends on the provider's error page; the login waits for the ctx.
func TestBrowserLoginWrongRedirectURI(t *testing.T) {
	s := newBrowserSetup(t, func(c *BrowserLoginConfig) { c.RedirectPath = "/elsewhere" })
	err := s.h.Authenticate(testCtx(t, 500*time.Millisecond))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the ctx's deadline", err)
	}
	if page := s.browser.LastPage(); !strings.Contains(page.Body, "redirect_uri is not registered for this client") {
		t.Errorf("the browser shows %q, want the provider's refusal", page.Body)
	}
	if !strings.Contains(s.logs.String(), "could not be opened") {
		t.Errorf("the opener's failure was not logged: %q", s.logs.String())
	}
}

func TestBrowserLoginPorts(t *testing.T) {
	busy, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port
	free := freePort(t)

	t.Run("first free candidate", func(t *testing.T) {
		s := newBrowserSetup(t, func(c *BrowserLoginConfig) { c.RedirectPorts = []int{busyPort, free} })
		if err := s.h.Authenticate(testCtx(t, 30*time.Second)); err != nil {
			t.Fatal(err)
		}
		if got := s.authParams(t).Get("redirect_uri"); got != fmt.Sprintf("http://127.0.0.1:%d/callback", free) {
			t.Errorf("redirect_uri = %q, want port %d", got, free)
		}
	})
	t.Run("all in use", func(t *testing.T) {
		s := newBrowserSetup(t, func(c *BrowserLoginConfig) { c.RedirectPorts = []int{busyPort} })
		err := s.h.Authenticate(testCtx(t, 30*time.Second))
		if !errors.Is(err, ErrNoRedirectPort) {
			t.Fatalf("err = %v, want ErrNoRedirectPort", err)
		}
	})
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestBrowserLoginCancelled: a person who never comes back leaves the
// login when ctx is cancelled, and the port is released.
func TestBrowserLoginCancelled(t *testing.T) {
	port := freePort(t)
	opened := make(chan struct{})
	s := newBrowserSetup(t, func(c *BrowserLoginConfig) {
		c.RedirectPorts = []int{port}
		c.OpenBrowser = func(context.Context, string) error { close(opened); return nil }
	})
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- s.h.Authenticate(ctx) }()
	<-opened
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Authenticate did not return after cancel")
	}
	ln, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatalf("the redirect port is still held: %v", err)
	}
	ln.Close()
}

// TestBrowserLoginsInParallel: two logins at once (two handlers, as two
// programs would) get two ports and both succeed; concurrent callers of one
// handler share one login.
func TestBrowserLoginsInParallel(t *testing.T) {
	a := newBrowserSetup(t, nil)
	b := newBrowserSetup(t, nil)
	var opens atomic.Int32
	both := make(chan struct{})
	var wg sync.WaitGroup
	gate := func(s *browserSetup) func(context.Context, string) error {
		return func(ctx context.Context, u string) error {
			if opens.Add(1) == 2 {
				close(both)
			}
			<-both // both servers are listening at once
			return s.browser.Open(ctx, u)
		}
	}
	a.h.open, b.h.open = gate(a), gate(b)
	errs := make(chan error, 4)
	for _, s := range []*browserSetup{a, b, a} {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- s.h.Authenticate(testCtx(t, 30*time.Second)) }()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := opens.Load(); n != 2 {
		t.Errorf("%d browsers opened, want 2 (one per handler)", n)
	}
	if pa, pb := a.authParams(t).Get("redirect_uri"), b.authParams(t).Get("redirect_uri"); pa == pb {
		t.Errorf("both logins used %s", pa)
	}
}

// TestBrowserLoginLandingFailure: a landing page that fails does not change
// the login's outcome.
func TestBrowserLoginLandingFailure(t *testing.T) {
	s := newBrowserSetup(t, func(c *BrowserLoginConfig) {
		c.Landing = func(w http.ResponseWriter, _ *http.Request, _ LoginOutcome) {
			http.Error(w, "template broken", http.StatusInternalServerError)
		}
	})
	if err := s.h.Authenticate(testCtx(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	if page := s.browser.LastPage(); page.Status != 500 {
		t.Errorf("landing status = %d, want the custom page's 500", page.Status)
	}
	if !s.h.Authenticated() {
		t.Error("not authenticated")
	}
}

// TestBrowserLoginDeviceFallback: when the browser cannot be opened, the
// device flow runs instead and says so.
// The loopback server is closed before the device flow starts, so that
// the abandoned browser login can neither complete beside it nor be
// offered to the person.
func TestBrowserLoginDeviceFallback(t *testing.T) {
	var authURL atomic.Value
	s := newBrowserSetup(t, func(c *BrowserLoginConfig) {
		c.DeviceFallback = true
		c.OpenBrowser = func(_ context.Context, u string) error {
			authURL.Store(u)
			return errors.New("no browser here")
		}
	}, func(pc *authtest.ProviderConfig) { pc.DeviceInterval = time.Second })
	loopback := make(chan error, 1)
	s.p.OnDeviceAuthorization(func(code string) {
		// The person has the device code now: the browser login's
		// loopback server must be gone.
		u, _ := url.Parse(authURL.Load().(string))
		resp, err := http.Get(u.Query().Get("redirect_uri") + "?state=" + u.Query().Get("state") + "&code=late")
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("the loopback server still answers: %s", resp.Status)
		} else {
			err = nil
		}
		loopback <- err
		_ = s.p.ApproveDevice(code, "ada")
	})
	if err := driven(s.clk, func() error { return s.h.Authenticate(testCtx(t, 30*time.Second)) }, s.h.Authenticated); err != nil {
		t.Fatal(err)
	}
	if err := <-loopback; err != nil {
		t.Error(err)
	}
	out := s.out.String()
	if !strings.Contains(out, "Logging in with a code instead (the browser could not be opened: no browser here)") || !strings.Contains(out, "Your confirmation code is") {
		t.Errorf("output = %q", out)
	}
	if strings.Contains(out, "/authorize?") {
		t.Errorf("the abandoned authorization URL was offered: %q", out)
	}
	if s.h.Username() != "ada" {
		t.Errorf("Username() = %q", s.h.Username())
	}
}

// TestBrowserLoginStoredFirst: a stored login is used without a browser;
// the getters never open one unless LoginOnDemand says so.
func TestBrowserLoginStoredFirst(t *testing.T) {
	store := &auth.MemoryStore{}
	first := newBrowserSetup(t, func(c *BrowserLoginConfig) { c.Store = store })
	if err := first.h.Authenticate(testCtx(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	first.h.Close()

	noBrowser := func(context.Context, string) error {
		t.Error("a browser was opened although a login was stored")
		return errors.New("no")
	}
	second := newBrowserSetupOn(t, first.clk, first.p, func(c *BrowserLoginConfig) {
		c.Store = store
		c.OpenBrowser = noBrowser
	})
	if err := second.h.Authenticate(testCtx(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}

	silent := newBrowserSetup(t, func(c *BrowserLoginConfig) { c.OpenBrowser = noBrowser })
	if _, err := silent.h.HubRequestHeaders(t.Context()); !errors.Is(err, auth.ErrLoginRequired) {
		t.Fatalf("getter without LoginOnDemand: %v, want auth.ErrLoginRequired", err)
	}
	onDemand := newBrowserSetup(t, func(c *BrowserLoginConfig) { c.LoginOnDemand = true })
	if _, err := onDemand.h.HubRequestHeaders(testCtx(t, 30*time.Second)); err != nil {
		t.Fatalf("getter with LoginOnDemand: %v", err)
	}
}

func TestBrowserLoginConfig(t *testing.T) {
	base := OAuthConfig{Endpoints: Endpoints{Issuer: "http://127.0.0.1:1"}, ClientID: "cli"}
	for _, tt := range []struct {
		name string
		cfg  BrowserLoginConfig
	}{
		{"no endpoints", BrowserLoginConfig{OAuthConfig: OAuthConfig{ClientID: "cli", Endpoints: Endpoints{TokenURL: "http://127.0.0.1:1/token"}}}},
		{"bad port", BrowserLoginConfig{OAuthConfig: base, RedirectPorts: []int{70000}}},
		{"relative path", BrowserLoginConfig{OAuthConfig: base, RedirectPath: "callback"}},
		{"path with query", BrowserLoginConfig{OAuthConfig: base, RedirectPath: "/cb?x=1"}},
		{"pinned user without issuer", BrowserLoginConfig{OAuthConfig: OAuthConfig{ClientID: "cli", Endpoints: Endpoints{AuthorizationURL: "https://a.example/auth", TokenURL: "https://a.example/token"}}, Username: "ada"}},
		{"plain http authorization endpoint", BrowserLoginConfig{OAuthConfig: OAuthConfig{ClientID: "cli", Endpoints: Endpoints{AuthorizationURL: "http://a.example/auth", TokenURL: "https://a.example/token"}}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewBrowserLogin(tt.cfg); !errors.Is(err, auth.ErrInvalidConfig) {
				t.Fatalf("err = %v, want auth.ErrInvalidConfig", err)
			}
		})
	}
}

// TestBrowserLoginBROWSER: without OpenBrowser and without a display, the
// command named by BROWSER opens the authorization URL (a real process
// here, a script that records it), and the login happens in the browser,
// not through the device fallback.
func TestBrowserLoginBROWSER(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("a shell script stands for the browser")
	}
	dir := t.TempDir()
	script, got := filepath.Join(dir, "browser"), filepath.Join(dir, "url")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nprintf '%s' \"$2\" > "+got+".tmp && mv "+got+".tmp "+got+"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DISPLAY", "")
	t.Setenv("WAYLAND_DISPLAY", "")
	t.Setenv("BROWSER", script+" --new-window %s")
	s := newBrowserSetup(t, func(c *BrowserLoginConfig) {
		c.OpenBrowser = nil
		c.DeviceFallback = true
	})
	opened := make(chan error, 1)
	go func() {
		for {
			b, err := os.ReadFile(got)
			if err == nil {
				opened <- s.browser.Open(t.Context(), string(b))
				return
			}
			select {
			case <-t.Context().Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	if err := s.h.Authenticate(testCtx(t, 30*time.Second)); err != nil {
		t.Fatalf("Authenticate: %v\n%s", err, s.out)
	}
	if err := <-opened; err != nil {
		t.Fatal(err)
	}
	if out := s.out.String(); strings.Contains(out, "confirmation code") || !strings.Contains(out, "Opened your browser") {
		t.Errorf("output = %q", out)
	}
	if s.h.Username() != "ada" {
		t.Errorf("Username() = %q", s.h.Username())
	}
}

func TestBrowserCommand(t *testing.T) {
	const u = "https://sso.example.com/authorize?a=1&b=2"
	tests := []struct {
		env  string
		name string
		args []string
	}{
		{env: "firefox", name: "firefox", args: []string{u}},
		{env: "firefox --new-window", name: "firefox", args: []string{"--new-window", u}},
		{env: "chromium --app=%s --x", name: "chromium", args: []string{"--app=" + u, "--x"}},
		{env: "w3m" + string(os.PathListSeparator) + "lynx", name: "w3m", args: []string{u}},
		{env: "  ", name: ""},
		{env: "", name: ""},
	}
	for _, tt := range tests {
		name, args, ok := browserCommand(tt.env, u)
		if ok != (tt.name != "") || name != tt.name || !slices.Equal(args, tt.args) {
			t.Errorf("browserCommand(%q) = %q %q %v, want %q %q", tt.env, name, args, ok, tt.name, tt.args)
		}
	}
}

// TestBrowserLoginFallbackPrompt: a device fallback shows its code through
// DevicePrompt when one is set, and Done closes when the login ends.
func TestBrowserLoginFallbackPrompt(t *testing.T) {
	prompts := make(chan DevicePrompt, 1)
	s := newBrowserSetup(t, func(c *BrowserLoginConfig) {
		c.DeviceFallback = true
		c.OpenBrowser = func(context.Context, string) error { return errors.New("no browser here") }
		c.DevicePrompt = func(_ context.Context, p DevicePrompt) error { prompts <- p; return nil }
	}, func(pc *authtest.ProviderConfig) { pc.DeviceInterval = time.Second })
	s.p.OnDeviceAuthorization(func(code string) { _ = s.p.ApproveDevice(code, "ada") })
	if err := driven(s.clk, func() error { return s.h.Authenticate(testCtx(t, 30*time.Second)) }, s.h.Authenticated); err != nil {
		t.Fatal(err)
	}
	p := <-prompts
	if p.UserCode == "" || p.VerificationURI == "" {
		t.Errorf("prompt = %+v", p)
	}
	select {
	case <-p.Done:
	default:
		t.Error("Done is open after the login")
	}
	if strings.Contains(s.out.String(), "Your confirmation code is") {
		t.Errorf("the default prompt ran too: %q", s.out)
	}
}

// TestStartOpener: an opener that fails at once (BROWSER=/bin/false) is an
// error, so that the login can fall back to a device code; one that exits
// 0, or is still running when the grace ends (a browser itself), opened
// the page.
func TestStartOpener(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Unix commands")
	}
	for _, tt := range []struct {
		name    string
		args    []string
		grace   time.Duration // long where the command ends by itself: it returns at its exit
		wantErr bool
	}{
		{"fails", []string{"false"}, time.Minute, true},
		{"succeeds", []string{"true"}, time.Minute, false},
		{"keeps running", []string{"sleep", "60"}, 100 * time.Millisecond, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path, err := exec.LookPath(tt.args[0])
			if err != nil {
				t.Skip(err)
			}
			cmd := exec.Command(path, tt.args[1:]...)
			err = startOpener(cmd, tt.grace)
			if (err != nil) != tt.wantErr {
				t.Errorf("startOpener(%v) = %v, want error %v", tt.args, err, tt.wantErr)
			}
			if cmd.Process != nil {
				_ = cmd.Process.Kill()
			}
		})
	}
}

// TestBrowserLoginDPoP: with DPoP, the authorization request carries the
// key's thumbprint (dpop_jkt, RFC 9449 §10), which binds the code: the
// exchange proves the key (after the provider's nonce challenge) and gets
// a DPoP-bound token, sent as "Authorization: DPoP" with a proof.
func TestBrowserLoginDPoP(t *testing.T) {
	s := newBrowserSetup(t, func(c *BrowserLoginConfig) { c.DPoP = true }, func(c *authtest.ProviderConfig) { c.DPoPNonce = true })
	if err := s.h.Authenticate(testCtx(t, 30*time.Second)); err != nil {
		t.Fatalf("Authenticate: %v (landing page: %+v)", err, s.browser.LastPage())
	}
	tok, err := s.h.Token(t.Context())
	if err != nil || tok.TokenType != "DPoP" || tok.DPoPKey == nil {
		t.Fatalf("token %v, %v", tok, err)
	}
	if q := s.authParams(t); q.Get("dpop_jkt") != tok.DPoPKey.Thumbprint() {
		t.Errorf("dpop_jkt %q, key %s", q.Get("dpop_jkt"), tok.DPoPKey.Thumbprint())
	}
	if n := s.p.DPoPNonceChallenges(); n != 1 {
		t.Errorf("nonce challenges %d, want 1", n)
	}
	hdr, err := s.h.RequestHeaders(t.Context(), auth.ServiceHub, http.MethodGet, &url.URL{Scheme: "https", Host: "hub.example", Path: "/me"}, "")
	if err != nil || !strings.HasPrefix(hdr.Get("Authorization"), "DPoP ") || hdr.Get("DPoP") == "" {
		t.Errorf("headers %v, %v", hdr, err)
	}
}
