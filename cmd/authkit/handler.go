package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/handlers"
)

// handler is what the commands need of the library's handlers.
type handler interface {
	Authenticate(ctx context.Context) error
	Token(ctx context.Context) (*auth.Token, error)
	Logout(ctx context.Context) error
	Username() string
	Close() error
}

// session is a profile's handler, and whether it may ask the person for
// anything now. Handlers are built silent: their getters and Token never
// prompt. Only login (and token --login) open the gate, and only around
// Authenticate.
type session struct {
	p        *profile
	h        handler
	mayAsk   atomic.Bool // the person may be asked now
	asked    atomic.Bool // a login ran (a prompt, a password grant)
	prompter *devicePrompter
}

// handlerOptions are the command-line choices that shape a handler.
type handlerOptions struct {
	noBrowser bool
	// open replaces the browser opener (the demo's simulated browser).
	open func(ctx context.Context, authURL string) error
}

// open builds the handler of p.
func (a *app) open(p *profile, opt handlerOptions) (*session, error) {
	store, err := auth.NewFileStore(auth.FileStoreConfig{Dir: p.TokenDir, Logger: a.log})
	if err != nil {
		return nil, err
	}
	s := &session{p: p, prompter: a.newPrompter()}
	oc := handlers.OAuthConfig{
		Endpoints: handlers.Endpoints{
			Issuer: p.Issuer, TokenURL: p.TokenURL, DeviceAuthorizationURL: p.DeviceAuthorizationURL,
			AuthorizationURL: p.AuthorizationURL, RevocationURL: p.RevocationURL, JWKSURL: p.JWKSURL,
		},
		ClientID:     p.ClientID,
		ClientSecret: p.Secret,
		ExtraScopes:  p.Scopes,
		Audiences:    p.Audiences,
		Logger:       a.log,
		UserAgent:    "authkit-cli/" + auth.Version,
		Store:        store,
	}
	flow := p.Flow
	if flow == flowBrowser && opt.noBrowser {
		flow = flowDevice
	}
	switch flow {
	case flowDevice:
		s.h, err = handlers.NewDeviceCode(handlers.DeviceCodeConfig{
			OAuthConfig: oc, Username: p.Username, UsernameClaim: p.UsernameClaim, Prompt: s.prompt,
		})
	case flowBrowser:
		var ports []int
		if p.RedirectPort != 0 {
			ports = []int{p.RedirectPort}
		}
		s.h, err = handlers.NewBrowserLogin(handlers.BrowserLoginConfig{
			OAuthConfig: oc, Username: p.Username, UsernameClaim: p.UsernameClaim, RedirectPorts: ports,
			OpenBrowser: opt.open, Output: a.stderr, DeviceFallback: true, DevicePrompt: s.prompt,
		})
	case flowClientCredentials:
		s.h, err = handlers.NewClientCredentials(handlers.ClientCredentialsConfig{OAuthConfig: oc})
	case flowPassword:
		cfg := handlers.PasswordConfig{OAuthConfig: oc, Username: p.Username, PasswordFunc: s.password(a)}
		if p.TOTP {
			cfg.TOTPCode = s.totpCode(a)
		}
		s.h, err = handlers.NewPassword(cfg)
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

// prompt shows a device code, or refuses when the person may not be asked.
func (s *session) prompt(ctx context.Context, p handlers.DevicePrompt) error {
	if !s.mayAsk.Load() {
		return fmt.Errorf("%w: a device login needs a person", auth.ErrLoginRequired)
	}
	return s.prompter.show(ctx, p)
}

// password is the password flow's PasswordFunc: AUTHKIT_PASSWORD, else the
// terminal, when the person may be asked.
func (s *session) password(a *app) func(context.Context) (auth.Secret, error) {
	return func(ctx context.Context) (auth.Secret, error) {
		s.asked.Store(true)
		if !s.p.Password.IsZero() {
			return s.p.Password, nil
		}
		if !s.mayAsk.Load() {
			s.asked.Store(false)
			return auth.Secret{}, fmt.Errorf("%w: no password (set AUTHKIT_PASSWORD or log in)", auth.ErrLoginRequired)
		}
		v, err := a.readSecret(fmt.Sprintf("Password for %s: ", s.p.Username))
		if err != nil {
			return auth.Secret{}, err
		}
		return auth.NewSecret(v), nil
	}
}

// totpCode asks for a one-time code at a password login.
func (s *session) totpCode(a *app) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		if !s.mayAsk.Load() {
			return "", fmt.Errorf("%w: a one-time code needs a person", auth.ErrLoginRequired)
		}
		return a.readLine("One-time code: ")
	}
}

// token returns a valid token: silently, or, when login is true and no
// token can be had silently, after a login. It reports whether the person
// was asked for anything (a device code, a browser login, a password), or
// a password login ran. The silent attempt waits at most timeout, unless it
// may ask for a password.
func (s *session) token(ctx context.Context, login bool, timeout time.Duration) (*auth.Token, bool, error) {
	s.mayAsk.Store(login)
	defer s.mayAsk.Store(false)
	defer s.prompter.wait()
	qctx, cancel := ctx, context.CancelFunc(func() {})
	if !login || s.p.Flow != flowPassword {
		qctx, cancel = context.WithTimeout(ctx, timeout)
	}
	tok, err := s.h.Token(qctx)
	cancel()
	if err == nil || !login || !isLoginRequired(err) {
		return tok, s.asked.Load(), err
	}
	s.asked.Store(true)
	if err = s.h.Authenticate(ctx); err != nil {
		return nil, true, err
	}
	tok, err = s.h.Token(ctx)
	return tok, true, err
}

// close stops the handler.
func (s *session) close() { _ = s.h.Close() }

// user names who the credentials are for: the verified username, or the
// client for a client acting as itself.
func (s *session) user() string {
	switch u := s.h.Username(); {
	case u != "":
		return u
	case s.p.Flow == flowClientCredentials:
		return "client " + s.p.ClientID
	}
	claim := s.p.UsernameClaim
	if claim == "" {
		claim = handlers.DefaultUsernameClaim
	}
	return fmt.Sprintf("a user the ID token does not name (no %q claim; see --username-claim)", claim)
}

// newLogger writes the library's records to w: warnings, or everything
// with verbose. Records carry no secrets (the library's rule).
func newLogger(w interface{ Write([]byte) (int, error) }, verbose bool) *slog.Logger {
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}}))
}
