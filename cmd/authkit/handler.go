package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/handlers"
	"github.com/authkit-go/authkit/internal/netpolicy"
)

// handler is what the commands need of the library's handlers.
type handler interface {
	Authenticate(ctx context.Context) error
	Token(ctx context.Context) (*auth.Token, error)
	Logout(ctx context.Context) error
	Username() string
	Stats() auth.Stats
	Close() error
}

// session is a profile's handler, and whether it may ask the person for
// anything now. Handlers are built silent: their getters and Token never
// prompt. Only login (and token --login) open the gate, and only around
// Authenticate.
type session struct {
	p        *profile
	h        handler
	readOnly bool        // never a new login, even with AUTHKIT_PASSWORD
	mayAsk   atomic.Bool // the person may be asked now
	asked    atomic.Bool // a login ran (a prompt, a password grant)
	prompter *devicePrompter
}

// handlerOptions are the command-line choices that shape a handler.
type handlerOptions struct {
	noBrowser bool
	// readOnly keeps the session to the stored login and its refresh:
	// status, whoami and logout never log in.
	readOnly bool
	// open replaces the browser opener (the demo's simulated browser).
	open func(ctx context.Context, authURL string) error
}

// open builds the handler of p.
func (a *app) open(p *profile, opt handlerOptions) (*session, error) {
	store, err := auth.NewFileStore(auth.FileStoreConfig{Dir: p.TokenDir, Logger: a.log})
	if err != nil {
		return nil, err
	}
	s := &session{p: p, readOnly: opt.readOnly, prompter: a.newPrompter()}
	oc := handlers.OAuthConfig{
		Endpoints: handlers.Endpoints{
			Issuer: p.Issuer, TokenURL: p.TokenURL, DeviceAuthorizationURL: p.DeviceAuthorizationURL,
			AuthorizationURL: p.AuthorizationURL, RevocationURL: p.RevocationURL, JWKSURL: p.JWKSURL,
		},
		ClientID:     p.ClientID,
		ClientSecret: p.ClientSecret,
		ExtraScopes:  p.Scopes,
		Audiences:    p.Audiences,
		// Each request is bounded: a provider that never answers ends a
		// login or a device poll with an error, not a hang.
		HTTPClient: &http.Client{Timeout: a.timeout},
		Logger:     a.log,
		UserAgent:  "authkit-cli/" + auth.Version,
		Store:      store,
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
		if p.PrivateKeyFile != "" {
			if oc.ClientAssertion, err = privateKeyJWT(p.PrivateKeyFile); err != nil {
				return nil, err
			}
			oc.ClientSecret = auth.Secret{}
		}
		s.h, err = handlers.NewClientCredentials(handlers.ClientCredentialsConfig{OAuthConfig: oc})
	case flowWorkload:
		s.h, err = workloadHandler(p, oc, a.getenv)
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
// terminal, when the person may be asked; never for a read-only session.
func (s *session) password(a *app) func(context.Context) (auth.Secret, error) {
	return func(ctx context.Context) (auth.Secret, error) {
		switch {
		case s.readOnly:
			return auth.Secret{}, fmt.Errorf("%w: no stored password login", auth.ErrLoginRequired)
		case !s.p.Password.IsZero():
			s.asked.Store(true)
			return s.p.Password, nil
		case !s.mayAsk.Load():
			return auth.Secret{}, fmt.Errorf("%w: no password (set AUTHKIT_PASSWORD or log in)", auth.ErrLoginRequired)
		}
		s.asked.Store(true)
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

// validToken opens the selected profile and returns its session and a
// valid token: silently, unless login allows a login. Without a usable
// login the error says what to run (exit 3).
func (a *app) validToken(cmd *cobra.Command, login bool, opt handlerOptions) (*session, *auth.Token, error) {
	p, err := a.selected(cmd)
	if err != nil {
		return nil, nil, err
	}
	s, err := a.open(p, opt)
	if err != nil {
		return nil, nil, err
	}
	tok, _, err := s.token(cmd.Context(), login, a.timeout)
	if err != nil {
		s.close()
		if isLoginRequired(err) {
			return nil, nil, loginRequired(p, err)
		}
		return nil, nil, err
	}
	return s, tok, nil
}

// close stops the handler.
func (s *session) close() { _ = s.h.Close() }

// user names who the credentials are for, safe to print on a terminal:
// the username (verified from the ID token, or the password flow's
// configured one), or the client for a client acting as itself.
func (s *session) user() string {
	switch u := s.h.Username(); {
	case u != "":
		return netpolicy.TerminalSafe(u)
	case s.p.machine():
		return "client " + s.p.ClientID
	}
	claim := s.p.UsernameClaim
	if claim == "" {
		claim = handlers.DefaultUsernameClaim
	}
	return fmt.Sprintf("a user the ID token does not name (no %q claim; see --username-claim)", claim)
}

// privateKeyJWT reads a PEM private key for private_key_jwt. Like ssh, it
// refuses a key file that others may read.
func privateKeyJWT(path string) (*handlers.PrivateKeyJWT, error) {
	if fi, err := os.Stat(path); err == nil && runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, usagef("private_key_file %s may be read by others (mode %04o): run `chmod 600 %s`", path, fi.Mode().Perm(), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, usagef("private_key_file %s: %v", path, unwrapPathError(err))
	}
	key, err := handlers.ParsePrivateKeyPEM(data)
	if err != nil {
		return nil, usagef("private_key_file %s: %v", path, err)
	}
	return handlers.NewPrivateKeyJWT(handlers.PrivateKeyJWTConfig{Key: key})
}

// workloadSource is a workload profile's platform token, in the order of
// handlers.Select: a token file, GitHub Actions, a command.
type workloadSource interface {
	handlers.JWTSource
	handlers.AssertionSource
}

// workloadHandler exchanges the workload's platform token: as the client
// assertion of a client credentials grant, or by token exchange.
func workloadHandler(p *profile, oc handlers.OAuthConfig, getenv func(string) string) (handler, error) {
	var src workloadSource
	switch {
	case p.FederatedTokenFile != "":
		src = handlers.FederatedTokenFile{Path: p.FederatedTokenFile}
	case p.GitHubAudience != "" && getenv(handlers.EnvGitHubTokenURL) != "":
		src = handlers.GitHubActionsToken{Audience: p.GitHubAudience, Getenv: getenv, HTTPClient: oc.HTTPClient}
	case len(p.TokenCommand) > 0:
		src = handlers.CommandToken{Command: p.TokenCommand}
	default:
		return nil, usagef("profile %q: no platform token: %s is not set (github_audience needs a GitHub Actions job with id-token: write)", p.Name, handlers.EnvGitHubTokenURL)
	}
	oc.ClientSecret = auth.Secret{}
	if p.Exchange == exchangeToken {
		return handlers.NewTokenExchange(handlers.TokenExchangeConfig{OAuthConfig: oc, SubjectToken: src})
	}
	oc.ClientAssertion = src
	return handlers.NewClientCredentials(handlers.ClientCredentialsConfig{OAuthConfig: oc})
}
