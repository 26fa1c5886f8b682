package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/authtest"
)

func (a *app) loginCommand() *cobra.Command {
	var noBrowser, demo, qr, save bool
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Log in, or reuse the stored login without a prompt",
		Long: `login makes the profile's login valid. A stored login is reused, refreshed
if needed, without any prompt. Otherwise:

  device   prints a URL and a code, a QR code of the URL that carries the
           code, and a countdown to the code's expiry (on a terminal);
  browser  opens your browser (BROWSER names one) and waits for the provider
           to send it back; without a browser it falls back to a device code;
  password asks for the password (or reads AUTHKIT_PASSWORD);
  client-credentials gets a token for the client itself.

The login is saved in the token directory for the next runs of authkit and of
the programs that use the same directory.`,
		Example: `  authkit login --demo
  authkit login --profile work
  authkit login --flow browser
  authkit login --issuer https://sso.example.com --client-id authkit-cli --no-browser --save`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("qr") {
				a.showQR = qr
			}
			if demo {
				return a.demo(cmd, noBrowser)
			}
			p, err := a.selected(cmd)
			if err != nil {
				return err
			}
			if err := a.login(cmd.Context(), p, handlerOptions{noBrowser: noBrowser}); err != nil {
				return err
			}
			if save {
				return a.saveProfile(p)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&noBrowser, "no-browser", false, "never open a browser: log in with a device code")
	cmd.Flags().BoolVar(&qr, "qr", false, "draw the QR code even when stderr is not a terminal (--qr=false: never)")
	cmd.Flags().BoolVar(&demo, "demo", false, "log in to an identity provider embedded in authkit, to try it out")
	cmd.Flags().BoolVar(&save, "save", false, "after the login, write the profile's settings (flags and AUTHKIT_* included, never a secret) to the config file")
	return cmd
}

// login runs the login of p and says who is logged in.
func (a *app) login(ctx context.Context, p *profile, opt handlerOptions) error {
	s, err := a.open(p, opt)
	if err != nil {
		return err
	}
	defer s.close()
	tok, asked, err := s.token(ctx, true, a.timeout)
	if err != nil {
		return err
	}
	reused := !asked && !p.machine()
	how := "Logged in"
	if reused {
		how = "Already logged in (stored login, no prompt)"
	}
	fmt.Fprintf(a.stderr, "%s as %s at %s%s.\n", how, s.user(), issuerOf(p), expiryNote(p, tok))
	return nil
}

// issuerOf names p's provider.
func issuerOf(p *profile) string {
	if p.Issuer != "" {
		return p.Issuer
	}
	return p.TokenURL
}

// expiryNote says until when tok's access token is valid, and what is true
// about refreshing it: client credentials get a new token whenever needed;
// a person's login without a refresh token is not refreshed
// (testdata/script/password.txtar, logout_all.txtar).
func expiryNote(p *profile, tok *auth.Token) string {
	if tok == nil || tok.Expiry.IsZero() {
		return ""
	}
	until := tok.Expiry.Local().Format("15:04:05")
	switch p.Flow {
	case flowClientCredentials:
		return fmt.Sprintf("; the access token is valid until %s, and a new one is fetched with the client's credentials when needed", until)
	case flowWorkload:
		return fmt.Sprintf("; the access token is valid until %s, and a new one is exchanged for the platform's token when needed", until)
	}
	if tok.RefreshToken.IsZero() {
		return fmt.Sprintf("; the access token is valid until %s, and the provider sent no refresh token: log in again then (asking for the offline_access scope may get one)", until)
	}
	return fmt.Sprintf("; the access token is valid until %s and is refreshed when needed", until)
}

// demoDelay is how long the demo's provider waits before it approves.
const demoDelay = 3 * time.Second

// demo logs in to an authtest provider embedded in the process, with a
// throw-away token directory: the newcomer's first run, without an identity
// provider.
func (a *app) demo(cmd *cobra.Command, noBrowser bool) error {
	const client, user, password = "authkit-demo", "ada", "demo-password"
	prov := authtest.NewProvider(authtest.ProviderConfig{
		Clients:        []authtest.Client{{ID: client}},
		Users:          []authtest.User{{Username: user, Password: password}},
		DeviceInterval: time.Second,
	})
	defer prov.Close()
	dir, err := os.MkdirTemp("", "authkit-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// The demo is the same wherever it runs: only --flow changes it, not a
	// profile, the environment or other flags.
	p := &profile{Name: "demo", Source: "--demo", Implicit: true}
	p.Issuer, p.ClientID, p.Flow, p.TokenDir = prov.Issuer(), client, flowDevice, dir
	if cmd.Flags().Changed("flow") {
		p.Flow = a.flagSet.Flow
	}
	if p.Flow != flowDevice && p.Flow != flowBrowser {
		return usagef("--demo shows the device and browser flows, not %q", p.Flow)
	}
	fmt.Fprintf(a.stderr, "Demo: an identity provider runs inside this authkit process at %s\n", prov.Issuer())
	var opt handlerOptions
	if p.Flow == flowBrowser && !noBrowser {
		fmt.Fprintf(a.stderr, "(authtest). A simulated browser logs in as %q for you; nothing is saved.\n\n", user)
		browser := prov.NewBrowser(user, password)
		opt.open = func(ctx context.Context, u string) error {
			go func() { _ = browser.Open(ctx, u) }()
			return nil
		}
	} else {
		fmt.Fprintf(a.stderr, "(authtest). It approves the code as %q after %s, as a person on their phone\nwould; nothing is saved.\n\n", user, demoDelay)
		prov.AutoApprove(user, demoDelay)
		opt.noBrowser = true
	}
	if err := a.login(cmd.Context(), p, opt); err != nil {
		return errors.Join(errors.New("demo login failed"), err)
	}
	fmt.Fprintf(a.stderr, "\nNothing was saved. For a provider that stays up: authkit dev --write-config, then\n"+
		"authkit login --profile dev (and token, status, whoami, logout) in another terminal.\n"+
		"With your provider: authkit login --issuer <issuer URL> --client-id <client id>\n"+
		"(or a profile in %s).\n", configPathHelp())
	return nil
}

// saveProfile writes p's settings — from the file, the environment and the
// flags — as its table in the config file, so that the next commands need
// no flags (testdata/script/login_save.txtar). Secrets are never written.
func (a *app) saveProfile(p *profile) error {
	if !regexp.MustCompile(`^[A-Za-z0-9_-]+$`).MatchString(p.Name) {
		return usagef("profile %q: --save writes only profiles named with letters, digits, - and _", p.Name)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[profiles.%s]\n", p.Name)
	str := func(key, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%-9s = %s\n", key, tomlString(v))
		}
	}
	list := func(key string, vs []string) {
		if len(vs) > 0 {
			q := make([]string, len(vs))
			for i, v := range vs {
				q[i] = tomlString(v)
			}
			fmt.Fprintf(&b, "%-9s = [%s]\n", key, strings.Join(q, ", "))
		}
	}
	fp := p.fileProfile
	str("issuer", fp.Issuer)
	str("token_url", fp.TokenURL)
	str("device_authorization_url", fp.DeviceAuthorizationURL)
	str("authorization_url", fp.AuthorizationURL)
	str("revocation_url", fp.RevocationURL)
	str("jwks_url", fp.JWKSURL)
	str("client_id", fp.ClientID)
	str("flow", fp.Flow)
	list("scopes", fp.Scopes)
	list("audiences", fp.Audiences)
	str("username", fp.Username)
	str("username_claim", fp.UsernameClaim)
	if fp.TOTP {
		fmt.Fprintf(&b, "%-9s = true\n", "totp")
	}
	if fp.RedirectPort != 0 {
		fmt.Fprintf(&b, "%-9s = %d\n", "redirect_port", fp.RedirectPort)
	}
	str("token_dir", fp.TokenDir)
	path, err := a.writeProfile(p.Name, b.String())
	if err != nil {
		return fmt.Errorf("the login is stored, but the profile could not be saved: %w", err)
	}
	use := ""
	if !p.Implicit || p.Name != defaultProfile {
		use = " --profile " + p.Name
	}
	fmt.Fprintf(a.stderr, "Saved profile %q to %s: authkit token%s needs no flags now.\n", p.Name, path, use)
	return nil
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\u%04X", r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
