package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/authkit-go/authkit/auth"
)

// Flows a profile may name.
const (
	flowDevice            = "device"
	flowBrowser           = "browser"
	flowClientCredentials = "client-credentials"
	flowPassword          = "password"
	// flowWorkload exchanges the workload's platform token (a federated
	// token file, GitHub Actions' OIDC token, a token command): no secret.
	flowWorkload = "workload"
)

var flows = []string{flowDevice, flowBrowser, flowClientCredentials, flowPassword, flowWorkload}

// How a workload profile exchanges its platform token.
const (
	exchangeAssertion = "client-assertion"
	exchangeToken     = "token-exchange"
)

// defaultProfile is the profile used when none is named anywhere.
const defaultProfile = "default"

// configFile is the TOML file of profiles:
//
//	profile = "work"                       # the default profile
//
//	[profiles.work]
//	issuer    = "https://sso.example.com"
//	client_id = "authkit-cli"
//	flow      = "device"
//	scopes    = ["api"]
type configFile struct {
	Profile  string                  `toml:"profile"`
	Profiles map[string]*fileProfile `toml:"profiles"`
}

// fileProfile is one profile as written in the file.
type fileProfile struct {
	Issuer                 string      `toml:"issuer"`
	TokenURL               string      `toml:"token_url"`
	DeviceAuthorizationURL string      `toml:"device_authorization_url"`
	AuthorizationURL       string      `toml:"authorization_url"`
	RevocationURL          string      `toml:"revocation_url"`
	JWKSURL                string      `toml:"jwks_url"`
	ClientID               string      `toml:"client_id"`
	ClientSecret           auth.Secret `toml:"client_secret"`
	Flow                   string      `toml:"flow"`
	Scopes                 []string    `toml:"scopes"`
	Audiences              []string    `toml:"audiences"`
	Username               string      `toml:"username"`
	UsernameClaim          string      `toml:"username_claim"`
	TOTP                   bool        `toml:"totp"`
	RedirectPort           int         `toml:"redirect_port"`
	TokenDir               string      `toml:"token_dir"`
	// PrivateKeyFile is a PEM key the client-credentials flow signs
	// private_key_jwt assertions with, instead of a secret.
	PrivateKeyFile string `toml:"private_key_file"`
	// The workload flow's platform token, tried in this order:
	// FederatedTokenFile (or AUTHKIT_FEDERATED_TOKEN_FILE), GitHub Actions
	// (with GitHubAudience), TokenCommand; Exchange is client-assertion
	// (the default) or token-exchange.
	FederatedTokenFile string   `toml:"federated_token_file"`
	GitHubAudience     string   `toml:"github_audience"`
	TokenCommand       []string `toml:"token_command"`
	Exchange           string   `toml:"exchange"`
}

// machine reports whether p's flow is a client acting as itself, with
// nobody to log in: client credentials or a workload.
func (p *profile) machine() bool { return p.Flow == flowClientCredentials || p.Flow == flowWorkload }

// profile is a profile resolved from the file, the environment and the
// flags, in that order of increasing precedence.
type profile struct {
	Name   string
	Source string // where it came from, for messages
	// Implicit says the profile is used without --profile: it is the
	// file's default, or "default".
	Implicit bool
	fileProfile
	Password auth.Secret // AUTHKIT_PASSWORD, if set
}

// usageError is a mistake in how authkit was called or configured: exit 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// defaultConfigPath is os.UserConfigDir()/authkit/config.toml.
func defaultConfigPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "authkit", "config.toml"), nil
}

// loadConfig reads the file at path. A missing file is an empty
// configuration unless the user named it (explicit). warn receives the
// warning about a file holding a secret that others may read.
func loadConfig(path string, explicit bool, warn func(string)) (*configFile, error) {
	var cfg configFile
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && !explicit:
		return &cfg, nil
	case err != nil:
		return nil, usagef("config file %s: %v", path, unwrapPathError(err))
	}
	md, err := toml.Decode(string(data), &cfg)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return nil, usagef("config file %s: line %d: %s", path, perr.Position.Line, withoutQuoted(perr.Message))
		}
		return nil, usagef("config file %s: %v", path, oneLine(err.Error()))
	}
	if undec := md.Undecoded(); len(undec) > 0 {
		return nil, usagef("config file %s: unknown setting %q", path, undec[0].String())
	}
	for _, p := range cfg.Profiles {
		if !p.ClientSecret.IsZero() && runtime.GOOS != "windows" {
			if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
				warn(fmt.Sprintf("%s holds a client secret and others may read it (mode %04o); run: chmod 600 %s",
					path, fi.Mode().Perm(), path))
			}
			break
		}
	}
	return &cfg, nil
}

// quotedRE matches what a TOML parse error quotes from the file.
var quotedRE = regexp.MustCompile(`"[^"]*"`)

// withoutQuoted replaces the text a parse error quotes from the file: it
// may be a secret written without quotes ("expected value but found
// "s3cr3t" instead").
func withoutQuoted(msg string) string { return quotedRE.ReplaceAllString(msg, "…") }

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// names returns the file's profile names, sorted.
func (c *configFile) names() []string {
	var out []string
	for n := range c.Profiles {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// overrides are the settings given by environment variables and flags.
type overrides struct {
	Issuer, ClientID, Flow, Username, UsernameClaim, TokenDir string
	Scopes, Audiences                                         []string
	set                                                       map[string]bool // which fields were given
}

// apply writes the given overrides over p.
func (o *overrides) apply(p *fileProfile) {
	for _, f := range []struct {
		key      string
		dst      *string
		override string
	}{
		{"issuer", &p.Issuer, o.Issuer}, {"client-id", &p.ClientID, o.ClientID}, {"flow", &p.Flow, o.Flow},
		{"username", &p.Username, o.Username}, {"username-claim", &p.UsernameClaim, o.UsernameClaim},
		{"token-dir", &p.TokenDir, o.TokenDir},
	} {
		if o.set[f.key] {
			*f.dst = f.override
		}
	}
	if o.set["scope"] {
		p.Scopes = o.Scopes
	}
	if o.set["audience"] {
		p.Audiences = o.Audiences
	}
}

// envOverrides reads the AUTHKIT_* variables: AUTHKIT_ISSUER,
// AUTHKIT_CLIENT_ID, AUTHKIT_FLOW, AUTHKIT_USERNAME, AUTHKIT_USERNAME_CLAIM,
// AUTHKIT_TOKEN_DIR,
// AUTHKIT_SCOPES and AUTHKIT_AUDIENCES (separated by spaces or commas).
func envOverrides(getenv func(string) string) *overrides {
	o := &overrides{set: map[string]bool{}}
	str := func(name, key string, dst *string) {
		if v := getenv(name); v != "" {
			*dst, o.set[key] = v, true
		}
	}
	list := func(name, key string, dst *[]string) {
		if v := getenv(name); v != "" {
			*dst, o.set[key] = strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' }), true
		}
	}
	str("AUTHKIT_ISSUER", "issuer", &o.Issuer)
	str("AUTHKIT_CLIENT_ID", "client-id", &o.ClientID)
	str("AUTHKIT_FLOW", "flow", &o.Flow)
	str("AUTHKIT_USERNAME", "username", &o.Username)
	str("AUTHKIT_USERNAME_CLAIM", "username-claim", &o.UsernameClaim)
	str("AUTHKIT_TOKEN_DIR", "token-dir", &o.TokenDir)
	list("AUTHKIT_SCOPES", "scope", &o.Scopes)
	list("AUTHKIT_AUDIENCES", "audience", &o.Audiences)
	return o
}

// resolve builds the named profile from the file, its own secrets
// (AUTHKIT_<PROFILE>_CLIENT_SECRET, AUTHKIT_<PROFILE>_PASSWORD: see
// scopedEnv) and, for the active profile only (the one named by --profile,
// AUTHKIT_PROFILE or the file's default), the environment and the flags.
// The unscoped AUTHKIT_CLIENT_SECRET and AUTHKIT_PASSWORD go to the active
// profile only when generic is set, which a command over every profile
// (logout --all, status) does not: a secret meant for one provider is never
// sent to another profile's (testdata/script/logout_all.txtar).
// implicit says the profile is used without --profile.
func resolve(cfg *configFile, path, name string, active, generic, implicit bool, env, flags *overrides, getenv func(string) string) (*profile, error) {
	fp, ok := cfg.Profiles[name]
	p := &profile{Name: name, Source: path, Implicit: implicit}
	switch {
	case ok:
		p.fileProfile = *fp
	case name != defaultProfile || !implicit:
		known := "it has none"
		if n := cfg.names(); len(n) > 0 {
			known = "it has " + strings.Join(n, ", ")
		}
		return nil, usagef("unknown profile %q: not in %s (%s)", name, path, known)
	}
	if active {
		env.apply(&p.fileProfile)
		flags.apply(&p.fileProfile)
		if v := getenv("AUTHKIT_CLIENT_SECRET"); v != "" && generic {
			p.ClientSecret = auth.NewSecret(v)
		}
		if v := getenv("AUTHKIT_PASSWORD"); v != "" && generic {
			p.Password = auth.NewSecret(v)
		}
	}
	if v := getenv("AUTHKIT_FEDERATED_TOKEN_FILE"); v != "" {
		p.FederatedTokenFile = v
	}
	if v := getenv(scopedEnv(name, "CLIENT_SECRET")); v != "" {
		p.ClientSecret = auth.NewSecret(v)
	}
	if v := getenv(scopedEnv(name, "PASSWORD")); v != "" {
		p.Password = auth.NewSecret(v)
	}
	if p.Flow == "" {
		p.Flow = flowDevice
	}
	return p, p.check()
}

// scopedEnv is the environment variable of a profile's own secret:
// AUTHKIT_<PROFILE>_<what>, the profile's name in upper case with every
// character other than a letter or digit as "_" (profile "ci-bot":
// AUTHKIT_CI_BOT_CLIENT_SECRET).
func scopedEnv(profile, what string) string {
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			return r
		}
		return '_'
	}, profile)
	return "AUTHKIT_" + name + "_" + what
}

// check reports the first thing missing or wrong in p, saying where to
// set it.
func (p *profile) check() error {
	where := func(key, env, flag string) string {
		return fmt.Sprintf("set %s in %s, %s or %s", key, p.Source, env, flag)
	}
	if !slices.Contains(flows, p.Flow) {
		return usagef("profile %q: flow %q is not one of %s", p.Name, p.Flow, strings.Join(flows, ", "))
	}
	if p.Issuer == "" && p.TokenURL == "" {
		return usagef("profile %q has no issuer: %s", p.Name, where("issuer", "AUTHKIT_ISSUER", "--issuer"))
	}
	if p.ClientID == "" {
		return usagef("profile %q has no client id: %s", p.Name, where("client_id", "AUTHKIT_CLIENT_ID", "--client-id"))
	}
	if p.Flow == flowWorkload {
		if p.Exchange != "" && p.Exchange != exchangeAssertion && p.Exchange != exchangeToken {
			return usagef("profile %q: exchange %q is not one of %s, %s", p.Name, p.Exchange, exchangeAssertion, exchangeToken)
		}
		if p.FederatedTokenFile == "" && p.GitHubAudience == "" && len(p.TokenCommand) == 0 {
			return usagef("profile %q: the workload flow needs a platform token: set federated_token_file (or AUTHKIT_FEDERATED_TOKEN_FILE), github_audience or token_command in %s", p.Name, p.Source)
		}
	}
	if p.Flow == flowClientCredentials && p.ClientSecret.IsZero() && p.PrivateKeyFile == "" {
		return usagef("profile %q: the client-credentials flow needs a client secret: set %s (or AUTHKIT_CLIENT_SECRET with --profile %s, or client_secret in %s, readable only by you), or a private_key_file",
			p.Name, scopedEnv(p.Name, "CLIENT_SECRET"), p.Name, p.Source)
	}
	if p.Flow == flowPassword && p.Username == "" {
		return usagef("profile %q: the password flow needs a username: %s", p.Name, where("username", "AUTHKIT_USERNAME", "--username"))
	}
	if p.RedirectPort < 0 || p.RedirectPort > 65535 {
		return usagef("profile %q: redirect_port %d is not a port", p.Name, p.RedirectPort)
	}
	return nil
}

// oneLine joins the lines of a message (errors.Join separates its errors
// with newlines) so that an error is one line on the terminal.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}
