package handlers

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/oauth2"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/internal/netpolicy"
)

// Defaults of [BrowserLoginConfig].
const (
	// DefaultRedirectPath is the path of the loopback redirect URI.
	DefaultRedirectPath = "/callback"
	// DefaultBrowserLoginTimeout bounds a browser login whose ctx has no
	// sooner deadline.
	DefaultBrowserLoginTimeout = 10 * time.Minute
	// GrantTypeAuthorizationCode is the grant_type of the code exchange
	// (https://www.rfc-editor.org/rfc/rfc6749#section-4.1.3).
	GrantTypeAuthorizationCode = "authorization_code"
)

// ErrNoRedirectPort means none of the configured loopback ports could be
// bound for the redirect URI (all in use, or not allowed).
var ErrNoRedirectPort = errors.New("handlers: no loopback port for the redirect URI")

// LoginOutcome is how a browser login ended, as the landing page learns
// it. It never carries the authorization code or a token.
type LoginOutcome struct {
	// Username is the verified user, when the login succeeded and the
	// provider sent an ID token.
	Username string
	// Err is why the login failed; nil when it succeeded.
	Err error
}

// BrowserLoginConfig configures [BrowserLogin]: the OAuth 2.0 authorization
// code grant with PKCE (https://www.rfc-editor.org/rfc/rfc7636) for a native
// application (https://www.rfc-editor.org/rfc/rfc8252): the person logs in
// in their browser, which brings the code back to a web server on a
// loopback address that lives only as long as the login. ClientID and
// either Issuer (discovery) or AuthorizationURL and TokenURL are required;
// the provider must accept the redirect URI
// http://127.0.0.1:<any port><RedirectPath> (or [::1] with IPv6). Scopes
// default to "openid profile offline_access".
type BrowserLoginConfig struct {
	OAuthConfig
	// Username, if set, is the user who must log in (see
	// [DeviceCodeConfig.Username]). Setting it requires Issuer.
	Username string
	// UsernameClaim is the ID token claim holding the username; empty
	// means "preferred_username".
	UsernameClaim string
	// LoginOnDemand lets the header getters start the browser login, as
	// [DeviceCodeConfig.LoginOnDemand] does.
	LoginOnDemand bool

	// RedirectPorts are the loopback ports tried in order for the redirect
	// URI; a port in use is skipped. Empty means a port the system picks,
	// which RFC 8252 §7.3 asks providers to accept. Use a list when the
	// provider registers fixed ports.
	RedirectPorts []int
	// RedirectPath is the redirect URI's path; empty means "/callback".
	RedirectPath string
	// IPv6 listens on [::1] instead of 127.0.0.1.
	IPv6 bool

	// OpenBrowser opens the authorization URL in the person's browser. Nil
	// means the command the BROWSER environment variable names, else the
	// platform's opener (open, xdg-open, rundll32) when a display is
	// available; either is started directly, never through a shell. An
	// error means no browser could be opened.
	OpenBrowser func(ctx context.Context, authURL string) error
	// Output receives the URL to open by hand, always, and the device
	// code of a fallback; nil means os.Stderr.
	Output io.Writer
	// Landing renders the page the browser lands on at the end of the
	// login: outcome says who logged in or why the login failed. It may
	// write its own page or redirect elsewhere (http.Redirect). Nil means
	// authkit's short success and error pages.
	Landing func(w http.ResponseWriter, r *http.Request, outcome LoginOutcome)
	// DeviceFallback runs the device authorization grant instead when no
	// browser can be opened: with the platform opener, when BROWSER is
	// unset and there is no display (on Linux and BSD neither DISPLAY nor WAYLAND_DISPLAY is set;
	// elsewhere an SSH session without DISPLAY) or the opener fails; with
	// OpenBrowser, when it returns an error. It needs a device
	// authorization endpoint (configured or discovered). Without it the
	// URL is printed and the login waits for it to be opened by hand.
	DeviceFallback bool
	// DevicePrompt shows the code of a device fallback; nil means
	// DefaultPrompt on Output, without opening a browser.
	DevicePrompt func(ctx context.Context, p DevicePrompt) error
	// Timeout bounds the login when ctx has no sooner deadline; zero means
	// DefaultBrowserLoginTimeout.
	Timeout time.Duration
}

// BrowserLogin logs a person in in their browser with the authorization
// code grant and PKCE, then keeps the token fresh with its refresh token,
// persisting rotated tokens in the store, exactly as [DeviceCode] does.
// Before any new login a stored refresh token is tried. It is safe for
// concurrent use; Close it when done.
type BrowserLogin struct {
	personLogin
	ports    []int
	path     string
	ipv6     bool
	open     func(ctx context.Context, authURL string) error
	platform bool // open is the platform's opener
	out      io.Writer
	landing  func(w http.ResponseWriter, r *http.Request, outcome LoginOutcome)
	fallback bool
	prompt   func(context.Context, DevicePrompt) error
	timeout  time.Duration
}

var _ auth.AuthenticationHandler = (*BrowserLogin)(nil)

// NewBrowserLogin validates cfg and returns the handler. It performs no I/O
// and opens no port until a login runs.
func NewBrowserLogin(cfg BrowserLoginConfig) (*BrowserLogin, error) {
	if cfg.AuthorizationURL == "" && cfg.Issuer == "" {
		return nil, auth.ConfigError("handlers: BrowserLogin: AuthorizationURL or Issuer is required")
	}
	for _, p := range cfg.RedirectPorts {
		if p < 0 || p > 65535 {
			return nil, auth.ConfigError("handlers: BrowserLogin: RedirectPorts holds %d, which is not a port", p)
		}
	}
	path := cfg.RedirectPath
	if path == "" {
		path = DefaultRedirectPath
	}
	if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, "?#") {
		return nil, auth.ConfigError("handlers: BrowserLogin: RedirectPath must be an absolute path without query or fragment, such as %q", DefaultRedirectPath)
	}
	if cfg.Timeout < 0 {
		return nil, auth.ConfigError("handlers: BrowserLogin: Timeout must not be negative")
	}
	h := &BrowserLogin{
		ports: cfg.RedirectPorts, path: path, ipv6: cfg.IPv6, open: cfg.OpenBrowser, out: cfg.Output,
		landing: cfg.Landing, fallback: cfg.DeviceFallback, prompt: cfg.DevicePrompt, timeout: cfg.Timeout,
	}
	if len(h.ports) == 0 {
		h.ports = []int{0}
	}
	if h.open == nil {
		h.open, h.platform = platformOpen, true
	}
	if h.out == nil {
		h.out = os.Stderr
	}
	if h.landing == nil {
		h.landing = DefaultLanding
	}
	if h.prompt == nil {
		h.prompt = DefaultPrompt(h.out, nil)
	}
	if h.timeout == 0 {
		h.timeout = DefaultBrowserLoginTimeout
	}
	h.personLogin = personLogin{kind: "BrowserLogin", store: cfg.Store, onDemand: cfg.LoginOnDemand, login: h.browserLogin, obs: cfg.Observer}
	if err := h.initUser("BrowserLogin", cfg.OAuthConfig, personScopes, cfg.Username, cfg.UsernameClaim); err != nil {
		return nil, err
	}
	var err error
	if h.engine, err = h.core.newEngine("BrowserLogin", cfg.OAuthConfig, h.fetch, h.check, cfg.Username); err != nil {
		return nil, err
	}
	return h, nil
}

// browserLogin runs one browser login and installs its token, or falls
// back to the device flow.
func (h *BrowserLogin) browserLogin(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	c := &h.core
	ep, err := c.endpoints(ctx, needAuthorize)
	if err != nil {
		return err
	}
	if h.fallback && h.platform && !haveDisplay() {
		return h.deviceFallback(ctx, "no display to open a browser on")
	}
	ln, err := h.listen()
	if err != nil {
		return err
	}
	l := &browserAttempt{
		h:        h,
		ctx:      ctx,
		tokenURL: ep.TokenURL,
		redirect: "http://" + ln.Addr().String() + h.path,
		verifier: oauth2.GenerateVerifier(),
		state:    randomToken(),
		nonce:    randomToken(),
		result:   make(chan error, 1),
	}
	srv := &http.Server{Handler: l, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	var stopOnce sync.Once
	stop := func() {
		stopOnce.Do(func() {
			sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer scancel()
			_ = srv.Shutdown(sctx)
			_ = srv.Close()
			// Serve may not have started yet, and then neither call
			// closed the listener: the port must be free on return.
			_ = ln.Close()
		})
	}
	defer stop()

	authURL := l.authURL(ep.AuthorizationURL)
	safeURL := netpolicy.TerminalSafe(authURL)
	if err := h.open(ctx, authURL); err != nil {
		if h.fallback {
			// Closed first: the abandoned login can neither finish beside
			// the device login nor be offered to the person.
			stop()
			return h.deviceFallback(ctx, "the browser could not be opened: "+err.Error())
		}
		c.log.Warn("handlers: browser login: the browser could not be opened; waiting for the URL to be opened by hand", "error", err)
		fmt.Fprintf(h.out, "Could not open a browser (%s). To log in, visit:\n\n  %s\n\n", netpolicy.TerminalSafe(err.Error()), safeURL)
	} else {
		fmt.Fprintf(h.out, "Opened your browser to log in. If it did not open, visit:\n\n  %s\n\n", safeURL)
	}
	if dl, ok := ctx.Deadline(); ok {
		fmt.Fprintf(h.out, "Waiting for the browser until %s.\n", dl.Local().Format("15:04:05"))
	}
	select {
	case err := <-l.result:
		return err
	case <-ctx.Done():
		return fmt.Errorf("handlers: browser login: no answer from the browser: %w", context.Cause(ctx))
	}
}

// deviceFallback runs the device flow in place of the browser login.
func (h *BrowserLogin) deviceFallback(ctx context.Context, why string) error {
	fmt.Fprintf(h.out, "Logging in with a code instead (%s).\n", netpolicy.TerminalSafe(why))
	tok, err := h.core.deviceLogin(ctx, h.prompt, h.user)
	if err != nil {
		return err
	}
	return h.engine.Set(ctx, tok)
}

// listen binds the first free candidate port on the loopback address.
func (h *BrowserLogin) listen() (net.Listener, error) {
	network, host := "tcp4", "127.0.0.1"
	if h.ipv6 {
		network, host = "tcp6", "::1"
	}
	var errs []error
	for _, p := range h.ports {
		ln, err := net.Listen(network, net.JoinHostPort(host, strconv.Itoa(p)))
		if err == nil {
			return ln, nil
		}
		errs = append(errs, err)
		if !errors.Is(err, syscall.EADDRINUSE) && !errors.Is(err, syscall.EACCES) {
			break
		}
	}
	return nil, fmt.Errorf("%w: tried %v: %w", ErrNoRedirectPort, h.ports, errors.Join(errs...))
}

// browserAttempt is one browser login: its PKCE verifier, state and nonce,
// and the loopback handler that receives the redirect.
type browserAttempt struct {
	h        *BrowserLogin
	ctx      context.Context // the login's: bounds the code exchange
	tokenURL string
	redirect string
	verifier string
	state    string
	nonce    string

	once   sync.Once
	result chan error // receives the outcome once
}

// authURL is the authorization request
// (https://www.rfc-editor.org/rfc/rfc6749#section-4.1.1).
func (l *browserAttempt) authURL(endpoint string) string {
	c := &l.h.core
	q := url.Values{}
	c.addCommon(q)
	q.Set("response_type", "code")
	q.Set("client_id", c.clientID)
	q.Set("redirect_uri", l.redirect)
	q.Set("state", l.state)
	q.Set("nonce", l.nonce)
	q.Set("code_challenge", oauth2.S256ChallengeFromVerifier(l.verifier))
	if k := c.dpop; k != nil {
		// Binds the code to the key (https://www.rfc-editor.org/rfc/rfc9449#section-10).
		q.Set("dpop_jkt", k.Thumbprint())
	}
	q.Set("code_challenge_method", "S256")
	sep := "?"
	if strings.Contains(endpoint, "?") {
		sep = "&"
	}
	return endpoint + sep + q.Encode()
}

// ServeHTTP receives the redirect
// (https://www.rfc-editor.org/rfc/rfc6749#section-4.1.2): it checks state,
// exchanges the code, verifies the ID token and installs the token, then
// shows the landing page. A request with another state is refused and the
// login goes on waiting: it did not come from this login's redirect.
func (l *browserAttempt) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != l.h.path {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	q := r.URL.Query()
	if q.Get("state") != l.state {
		l.h.core.log.Warn("handlers: browser login: refused a redirect whose state is not this login's (forged, or from an older login)")
		writePage(w, http.StatusBadRequest, "This answer does not belong to the login in progress",
			"Its state parameter does not match. Start the login again from the application.")
		return
	}
	var outcome LoginOutcome
	done := false
	l.once.Do(func() {
		done = true
		outcome = l.finish(q)
	})
	if !done {
		writePage(w, http.StatusGone, "This login has already finished", "You can close this window.")
		return
	}
	l.h.landing(w, r, outcome)
	l.result <- outcome.Err
}

// finish turns the redirect's query into the login's outcome.
func (l *browserAttempt) finish(q url.Values) LoginOutcome {
	c := &l.h.core
	if code := q.Get("error"); code != "" {
		oe := &auth.OAuthError{Code: code, Description: q.Get("error_description"), URI: q.Get("error_uri")}
		if code == "access_denied" {
			return LoginOutcome{Err: fmt.Errorf("handlers: browser login: %w: %w", auth.ErrAccessDenied, oe)}
		}
		return LoginOutcome{Err: fmt.Errorf("handlers: browser login: the provider refused the request: %w", oe)}
	}
	code := q.Get("code")
	if code == "" {
		return LoginOutcome{Err: errors.New("handlers: browser login: the redirect carries neither a code nor an error")}
	}
	tok, err := c.token(l.ctx, l.tokenURL, url.Values{
		"grant_type":    {GrantTypeAuthorizationCode},
		"code":          {code},
		"redirect_uri":  {l.redirect},
		"code_verifier": {l.verifier},
	}, nil)
	if err != nil {
		return LoginOutcome{Err: fmt.Errorf("handlers: browser login: exchanging the code: %w", err)}
	}
	// A new login, not a rotation: a token that fails the check is not
	// saved (the stored login of the configured user stays as it was).
	var id auth.Identity
	if err := retryTransient(l.ctx, c.clock, func() (err error) { id, err = c.checkLogin(l.ctx, tok, l.h.user, l.nonce); return err }); err != nil {
		return LoginOutcome{Err: err}
	}
	if err := l.h.engine.Set(l.ctx, tok.WithIdentity(id)); err != nil {
		return LoginOutcome{Err: err}
	}
	return LoginOutcome{Username: c.knownUsername(l.h.user)}
}

// randomToken returns 32 random bytes, base64url-encoded: a state or nonce.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>{{.Title}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:36em;margin:4em auto;padding:0 1em}</style>
</head><body><h1 id="title">{{.Title}}</h1><p id="detail">{{.Detail}}</p></body></html>
`))

// writePage writes authkit's small HTML page.
func writePage(w http.ResponseWriter, status int, title, detail string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = pageTemplate.Execute(w, struct{ Title, Detail string }{title, detail})
}

// DefaultLanding writes authkit's landing page, used when
// [BrowserLoginConfig.Landing] is nil; a custom Landing may call it, for
// instance for failures only. The success page names the user; the error
// page names the failure without the code, a token or the provider's
// description (which may echo what the request carried).
func DefaultLanding(w http.ResponseWriter, _ *http.Request, o LoginOutcome) {
	if o.Err == nil {
		detail := "You can close this window and return to the application."
		if o.Username != "" {
			detail = "You are logged in as " + o.Username + ". " + detail
		}
		writePage(w, http.StatusOK, "Logged in", detail)
		return
	}
	reason := "The login failed. Return to the application for details, and try again."
	var oe *auth.OAuthError
	switch {
	case errors.Is(o.Err, auth.ErrAccessDenied):
		reason = "The login was denied. Return to the application to try again."
	case errors.As(o.Err, &oe):
		reason = "The provider refused the login (" + oe.Code + "). Return to the application for details."
	}
	writePage(w, http.StatusBadRequest, "Login failed", reason)
}

// platformOpen opens an http(s) URL with the platform's opener, started
// directly (never through a shell). It fails when there is no display.
func platformOpen(_ context.Context, authURL string) error {
	u, err := url.Parse(authURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") {
		return errors.New("handlers: only http(s) URLs are opened in a browser")
	}
	if !haveDisplay() {
		return errors.New("handlers: no display to open a browser on")
	}
	return systemOpen(authURL)
}

// haveDisplay reports whether a browser could be shown: BROWSER names one
// (the user says so), or on Linux and the BSDs a DISPLAY or WAYLAND_DISPLAY
// is set; elsewhere the session is not an SSH session without a forwarded
// DISPLAY.
func haveDisplay() bool {
	if _, _, ok := browserCommand(os.Getenv("BROWSER"), ""); ok {
		return true
	}
	x := os.Getenv("DISPLAY") != "" || os.Getenv("WAYLAND_DISPLAY") != ""
	switch runtime.GOOS {
	case "darwin", "windows":
		return x || (os.Getenv("SSH_CONNECTION") == "" && os.Getenv("SSH_TTY") == "")
	}
	return x
}
