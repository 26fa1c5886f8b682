package handlers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/internal/backoff"
	"github.com/authkit-go/authkit/internal/netpolicy"
)

// Defaults of [DeviceCodeConfig].
const (
	// DefaultUsernameClaim is the ID token claim read as the username.
	DefaultUsernameClaim = "preferred_username"
	// DefaultDeviceInterval is the polling interval when the provider
	// sends none (https://www.rfc-editor.org/rfc/rfc8628#section-3.2).
	DefaultDeviceInterval = 5 * time.Second
	// SlowDownStep is added to the interval on each slow_down answer
	// (https://www.rfc-editor.org/rfc/rfc8628#section-3.5).
	SlowDownStep = 5 * time.Second
	// GrantTypeDeviceCode is the grant_type of device token requests
	// (https://www.rfc-editor.org/rfc/rfc8628#section-3.4).
	GrantTypeDeviceCode = "urn:ietf:params:oauth:grant-type:device_code"
)

// DevicePrompt is what a person needs to approve a device login
// (https://www.rfc-editor.org/rfc/rfc8628#section-3.3).
type DevicePrompt struct {
	// VerificationURI is the page where the user enters UserCode.
	VerificationURI string
	// VerificationURIComplete, if the provider sent one, is a page that
	// carries the code already (https://www.rfc-editor.org/rfc/rfc8628#section-3.3.1).
	VerificationURIComplete string
	// UserCode is the code the user confirms or types.
	UserCode string
	// Expiry is when the code stops working.
	Expiry time.Time
	// ExpiresIn is how long the code stays valid, from when it was issued.
	ExpiresIn time.Duration
	// Done is closed when the login this prompt belongs to ends: approved,
	// refused, expired, failed or cancelled. A prompt that shows a
	// countdown or a spinner stops it then.
	Done <-chan struct{}
}

// DeviceCodeConfig configures [DeviceCode]: the OAuth 2.0 device
// authorization grant (https://www.rfc-editor.org/rfc/rfc8628). ClientID
// and either Issuer (discovery) or TokenURL and DeviceAuthorizationURL are
// required. Scopes default to "openid profile offline_access". The username
// comes from the verified ID token; verifying it needs Issuer (and JWKSURL,
// else discovered).
type DeviceCodeConfig struct {
	OAuthConfig
	// Username, if set, is the user who must log in: a login by anybody
	// else fails with an error wrapping auth.ErrUserMismatch, and the
	// stored tokens of Username are left untouched. It is part of the
	// store key. Setting it requires Issuer.
	Username string
	// UsernameClaim is the ID token claim holding the username; empty
	// means "preferred_username".
	UsernameClaim string
	// LoginOnDemand lets the header getters start the device login, with
	// the getter's ctx, when no credential can be had silently. Zero
	// (false) keeps the getters silent: they return an error wrapping
	// auth.ErrLoginRequired and only Authenticate logs in.
	LoginOnDemand bool
	// Prompt shows the code to the person. Nil means DefaultPrompt on
	// os.Stderr, which also opens the browser when stderr is a terminal
	// and the CI environment variable is unset.
	Prompt func(ctx context.Context, p DevicePrompt) error
	// OpenBrowser opens a URL for the default prompt; nil means the
	// command the BROWSER environment variable names, else the system's
	// opener (xdg-open, open, rundll32). Set NoBrowser to never open one.
	OpenBrowser func(uri string) error
	// NoBrowser keeps the default prompt from opening a browser.
	NoBrowser bool
}

// DeviceCode logs a person in with the device authorization grant, then
// keeps the token fresh with its refresh token, persisting rotated tokens
// in the store. Before any new login a stored refresh token is tried. It is
// safe for concurrent use; Close it when done.
type DeviceCode struct {
	personLogin
	prompt func(context.Context, DevicePrompt) error
}

var _ auth.AuthenticationHandler = (*DeviceCode)(nil)

// NewDeviceCode validates cfg and returns the handler. It performs no I/O.
func NewDeviceCode(cfg DeviceCodeConfig) (*DeviceCode, error) {
	if cfg.DeviceAuthorizationURL == "" && cfg.Issuer == "" {
		return nil, auth.ConfigError("handlers: DeviceCode: DeviceAuthorizationURL or Issuer is required")
	}
	h := &DeviceCode{prompt: cfg.Prompt}
	h.personLogin = personLogin{kind: "DeviceCode", store: cfg.Store, onDemand: cfg.LoginOnDemand, login: h.deviceLogin, obs: cfg.Observer}
	if err := h.initUser("DeviceCode", cfg.OAuthConfig, personScopes, cfg.Username, cfg.UsernameClaim); err != nil {
		return nil, err
	}
	if h.prompt == nil {
		var open func(string) error
		if !cfg.NoBrowser && isTerminal(os.Stderr) && os.Getenv("CI") == "" {
			open = cfg.OpenBrowser
			if open == nil {
				open = systemOpen
			}
		}
		h.prompt = DefaultPrompt(os.Stderr, open)
	}
	var err error
	if h.engine, err = h.core.newEngine("DeviceCode", cfg.OAuthConfig, h.fetch, h.check, cfg.Username); err != nil {
		return nil, err
	}
	return h, nil
}

// deviceLogin runs the device authorization grant
// (https://www.rfc-editor.org/rfc/rfc8628#section-3) and installs the token.
func (h *DeviceCode) deviceLogin(ctx context.Context) error {
	tok, err := h.core.deviceLogin(ctx, h.prompt, h.user)
	if err != nil {
		return err
	}
	return h.engine.Set(ctx, tok)
}

// deviceLogin runs the device authorization grant with prompt and returns
// the token, its ID token verified to name want (when set).
func (c *oauthCore) deviceLogin(ctx context.Context, prompt func(context.Context, DevicePrompt) error, want string) (*auth.Token, error) {
	ep, err := c.endpoints(ctx, needDevice)
	if err != nil {
		return nil, err
	}
	form := url.Values{}
	c.addCommon(form)
	da, err := c.client.DeviceAuthorization(ctx, ep.DeviceAuthorizationURL, form)
	if err != nil {
		return nil, fmt.Errorf("handlers: device authorization: %w", err)
	}
	now := c.clock.Now()
	done := make(chan struct{})
	defer close(done)
	if err := prompt(ctx, DevicePrompt{
		Done:                    done,
		VerificationURI:         da.VerificationURI,
		VerificationURIComplete: da.VerificationURIComplete,
		UserCode:                da.UserCode,
		Expiry:                  da.Expiry,
		ExpiresIn:               da.Expiry.Sub(now),
	}); err != nil {
		return nil, fmt.Errorf("handlers: device login prompt: %w", err)
	}
	interval := da.Interval
	if interval <= 0 {
		interval = DefaultDeviceInterval
	}
	var tok *auth.Token
	for {
		// https://www.rfc-editor.org/rfc/rfc8628#section-3.5: wait the
		// interval before every poll; stop when the code expired.
		if err := backoff.Sleep(ctx, c.clock.AfterFunc, interval); err != nil {
			return nil, fmt.Errorf("handlers: device login: %w", err)
		}
		if !c.clock.Now().Before(da.Expiry) {
			return nil, fmt.Errorf("%w: log in again and approve within %s", auth.ErrDeviceCodeExpired, da.Expiry.Sub(now).Round(time.Second))
		}
		tok, err = c.token(ctx, ep.TokenURL, url.Values{
			"grant_type":  {GrantTypeDeviceCode},
			"device_code": {da.DeviceCode.Reveal()},
		}, nil)
		if err == nil {
			break
		}
		if auth.IsTransient(err) {
			// The device code is still good: keep polling
			// (https://www.rfc-editor.org/rfc/rfc8628#section-3.5).
			c.log.Debug("handlers: device login: transient failure while polling; polling on", "error", err)
			continue
		}
		var oe *auth.OAuthError
		if errors.As(err, &oe) {
			switch oe.Code {
			case "authorization_pending":
				continue
			case "slow_down":
				interval += SlowDownStep
				c.log.Debug("handlers: device login: slow_down", "interval", interval)
				continue
			}
		}
		return nil, fmt.Errorf("handlers: device login: %w", err)
	}
	// A new login, not a rotation: a token that fails the check is not
	// saved (the stored login of the configured user stays as it was).
	// A key set that is briefly unreachable is waited for.
	var id auth.Identity
	if err := retryTransient(ctx, c.clock, func() (err error) { id, err = c.checkIdentity(ctx, tok, want); return err }); err != nil {
		return nil, err
	}
	return tok.WithIdentity(id), nil
}

// retryTransient runs f until it succeeds, fails for good, or ctx ends,
// waiting between transient failures as the engine does.
func retryTransient(ctx context.Context, clock auth.Clock, f func() error) error {
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil || !auth.IsTransient(err) {
			return err
		}
		if serr := backoff.Sleep(ctx, clock.AfterFunc, backoff.Delay(attempt, 250*time.Millisecond, 10*time.Second)); serr != nil {
			return fmt.Errorf("%w (the last attempt failed: %w)", serr, err)
		}
	}
}

// DefaultPrompt returns a prompt that writes the code to w as a person
// expects it, and, when open is not nil, opens the verification page with
// it (an error opening the browser is ignored: the text is enough).
func DefaultPrompt(w io.Writer, open func(uri string) error) func(context.Context, DevicePrompt) error {
	return func(_ context.Context, p DevicePrompt) error {
		// The provider's values are printed on a terminal: whatever could
		// drive it (escape sequences, control and bidi characters) is
		// neutralised.
		_, err := fmt.Fprintf(w, "To log in, open %s and enter the code below.\nYour confirmation code is %s (valid for %s).\n",
			netpolicy.TerminalSafe(p.VerificationURI), netpolicy.TerminalSafe(p.UserCode), p.ExpiresIn.Round(time.Second))
		if err != nil {
			return err
		}
		target := p.VerificationURI
		if p.VerificationURIComplete != "" {
			target = p.VerificationURIComplete
			fmt.Fprintf(w, "Or open %s, which carries the code.\n", netpolicy.TerminalSafe(p.VerificationURIComplete))
		}
		if open != nil {
			if u, err := url.Parse(target); err == nil && (u.Scheme == "https" || u.Scheme == "http") {
				_ = open(target)
			}
		}
		return nil
	}
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// systemOpen opens uri in the user's browser: with the command named by
// the BROWSER environment variable when it is set (see browserCommand), else
// with the platform's opener. The command is started directly, never
// through a shell.
func systemOpen(uri string) error {
	var cmd *exec.Cmd
	if name, args, ok := browserCommand(os.Getenv("BROWSER"), uri); ok {
		cmd = exec.Command(name, args...)
	} else {
		switch runtime.GOOS {
		case "darwin":
			cmd = exec.Command("open", uri)
		case "windows":
			cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", uri)
		default:
			cmd = exec.Command("xdg-open", uri)
		}
	}
	return startOpener(cmd, openerGrace)
}

// openerGrace is how long startOpener waits for an opener to fail.
const openerGrace = 2 * time.Second

// startOpener starts an opener and gives it grace to fail: one that exits
// with an error by then (BROWSER=/bin/false, xdg-open without a browser)
// did not open anything, and the login can fall back to a device code
// rather than wait for a browser that never came. One still running (a
// browser itself) or that exited 0 opened it (TestStartOpener).
func startOpener(cmd *exec.Cmd, grace time.Duration) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case err := <-exited:
		if err != nil {
			return fmt.Errorf("%s failed: %w", filepath.Base(cmd.Path), err)
		}
		return nil
	case <-t.C:
		return nil
	}
}

// browserCommand reads the BROWSER convention that xdg-open and Python's
// webbrowser follow: a list of commands separated by the path list
// separator, of which the first is used; its words are split at spaces,
// and "%s" in them is replaced by the URL, which is otherwise the last
// argument. It reports false when env names no command.
func browserCommand(env, uri string) (name string, args []string, ok bool) {
	first, _, _ := strings.Cut(env, string(os.PathListSeparator))
	words := strings.Fields(first)
	if len(words) == 0 {
		return "", nil, false
	}
	placed := false
	for _, w := range words[1:] {
		if strings.Contains(w, "%s") {
			w, placed = strings.ReplaceAll(w, "%s", uri), true
		}
		args = append(args, w)
	}
	if !placed {
		args = append(args, uri)
	}
	return words[0], args, true
}
