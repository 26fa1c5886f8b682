package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/internal/netpolicy"
)

// Exit codes.
const (
	exitOK            = 0
	exitError         = 1
	exitUsage         = 2
	exitLoginRequired = 3
	// A signal ends the command with the shells' 128 + its number: 130 for
	// SIGINT (Ctrl-C), 143 for SIGTERM.
	exitSignal = 128
)

// defaultTimeout bounds the commands that never wait for a person.
const defaultTimeout = 30 * time.Second

// app is one run of the command.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	log            *slog.Logger

	interactive bool // stderr is a terminal a person reads
	color       bool // escape codes for colour are welcome
	showQR      bool
	animate     bool

	// Global flags.
	configPath string
	profile    string
	verbose    bool
	timeout    time.Duration
	flagSet    *overrides

	cfg     *configFile // read once
	cfgPath string
}

// signalError is the cause of a run's ctx when a signal ended it.
type signalError struct{ sig os.Signal }

func (e signalError) Error() string {
	if e.sig == os.Interrupt {
		return "interrupted"
	}
	return "terminated"
}

// run executes the command line args and returns the exit code. A signal
// that ends the run is ctx's cause (a signalError).
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv}
	a.interactive = isTerminal(stderr) && getenv("TERM") != "dumb"
	a.color = a.interactive && getenv("NO_COLOR") == ""
	a.showQR, a.animate = a.interactive, a.interactive
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		// A password prompt cut short by a signal must not leave the
		// terminal without echo.
		if state, err := term.GetState(int(f.Fd())); err == nil {
			defer term.Restore(int(f.Fd()), state)
		}
	}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	ran := false
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		ran = true
		a.log = newLogger(stderr, a.verbose)
		if a.timeout <= 0 {
			return usagef("--timeout must be positive, not %s", a.timeout)
		}
		return nil
	}
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var sig signalError
	if errors.As(context.Cause(ctx), &sig) {
		fmt.Fprintf(stderr, "\nauthkit: %s\n", sig.Error())
		if n, ok := sig.sig.(syscall.Signal); ok {
			return exitSignal + int(n)
		}
		return exitError
	}
	var ue *usageError
	code := exitError
	switch {
	case !ran || errors.As(err, &ue) || errors.Is(err, auth.ErrInvalidConfig):
		code = exitUsage
	case isLoginRequired(err):
		code = exitLoginRequired
	}
	if !ran {
		// cobra's own errors (an unknown command with its suggestions, a
		// bad flag) keep the lines cobra gave them.
		prefix := "authkit: "
		for _, line := range strings.Split(strings.TrimRight(err.Error(), "\n"), "\n") {
			text := strings.TrimLeft(line, "\t") // cobra indents its suggestions with tabs
			fmt.Fprintf(stderr, "%s%s%s\n", prefix, line[:len(line)-len(text)], netpolicy.TerminalSafe(text))
			prefix = ""
		}
		fmt.Fprintf(stderr, "Run 'authkit --help' for usage.\n")
		return code
	}
	fmt.Fprintf(stderr, "authkit: %s\n", netpolicy.TerminalSafe(oneLine(err.Error())))
	return code
}

func isLoginRequired(err error) bool { return errors.Is(err, auth.ErrLoginRequired) }

// loginRequired says, in one line, what to run, and why the login is
// needed when the library said more than that it is.
func loginRequired(p *profile, err error) error {
	why := strings.Replace(err.Error(), auth.ErrLoginRequired.Error()+": ", "", 1)
	if why == auth.ErrLoginRequired.Error() {
		why = "no usable login"
	}
	return &loginRequiredError{msg: fmt.Sprintf("login required for profile %q (%s): run 'authkit login%s'", p.Name, oneLine(why), profileFlag(p)), err: err}
}

// loginRequiredError is exit code 3 with a message of its own.
type loginRequiredError struct {
	msg string
	err error
}

func (e *loginRequiredError) Error() string { return e.msg }
func (e *loginRequiredError) Unwrap() error { return e.err }

// profileFlag is the --profile flag that names p, or "" for the profile
// used without one.
func profileFlag(p *profile) string {
	if p.Implicit {
		return ""
	}
	return " --profile " + p.Name
}

func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// newLogger writes the library's records to w with verbose, and discards
// them without: the person sees one line per problem, the command's own
// (testdata/script/password.txtar). Records carry no secrets (the library's rule).
func newLogger(w io.Writer, verbose bool) *slog.Logger {
	if !verbose {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}}))
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "authkit",
		Short: "Log in once; hand a valid access token to every program you run",
		Long: `authkit logs you in to an OAuth 2.0 / OpenID Connect provider once, keeps
the login in a private token directory shared with the programs built on
authkit, refreshes it silently, and prints a valid access token for scripts
and kubectl.

Profiles live in ` + configPathHelp() + ` (TOML):

  profile = "work"              # the default profile

  [profiles.work]
  issuer    = "https://sso.example.com"
  client_id = "authkit-cli"
  flow      = "device"          # device | browser | client-credentials | password
  scopes    = ["api"]           # added to the flow's defaults
  audiences = ["https://hub.example.com"]

Flags override AUTHKIT_* environment variables (AUTHKIT_ISSUER,
AUTHKIT_CLIENT_ID, AUTHKIT_FLOW, AUTHKIT_SCOPES, AUTHKIT_AUDIENCES,
AUTHKIT_USERNAME, AUTHKIT_USERNAME_CLAIM, AUTHKIT_TOKEN_DIR), which override
the file, for the profile in use (--profile, AUTHKIT_PROFILE, the file's
"profile", else "default"); the file is AUTHKIT_CONFIG or --config. Secrets:
AUTHKIT_<PROFILE>_CLIENT_SECRET and AUTHKIT_<PROFILE>_PASSWORD for that
profile (AUTHKIT_CI_BOT_CLIENT_SECRET for "ci-bot"), in every command;
AUTHKIT_CLIENT_SECRET and AUTHKIT_PASSWORD for the profile in use only, and
for none in a command over every profile (status, logout --all).

Prompts and progress go to stderr, data to stdout. NO_COLOR is respected.
Exit codes: 0 ok, 1 error, 2 usage or configuration error, 3 login required,
130 interrupted (Ctrl-C), 143 terminated.`,
		Example: `  authkit login --demo                      # try it without an identity provider
  authkit login --issuer https://sso.example.com --client-id authkit-cli
  curl -H "$(authkit token --format header)" https://hub.example.com/api`,
		Version:       auth.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.CompletionOptions.DisableDefaultCmd = true
	f := root.PersistentFlags()
	f.StringVar(&a.configPath, "config", "", "config file (default "+configPathHelp()+"; AUTHKIT_CONFIG)")
	f.StringVarP(&a.profile, "profile", "p", "", "profile to use (AUTHKIT_PROFILE; default: the file's \"profile\", else \"default\")")
	f.BoolVarP(&a.verbose, "verbose", "v", false, "log the library's debug records to stderr (never a secret)")
	f.DurationVar(&a.timeout, "timeout", defaultTimeout, "how long to wait for the provider when nobody is being asked anything")
	a.flagSet = &overrides{set: map[string]bool{}}
	o := a.flagSet
	f.StringVar(&o.Issuer, "issuer", "", "the provider's issuer URL")
	f.StringVar(&o.ClientID, "client-id", "", "the OAuth client id")
	f.StringVar(&o.Flow, "flow", "", "how to log in: device, browser, client-credentials or password")
	f.StringSliceVar(&o.Scopes, "scope", nil, "scopes to request besides the flow's defaults (repeatable)")
	f.StringSliceVar(&o.Audiences, "audience", nil, "audiences to request (repeatable)")
	f.StringVar(&o.Username, "username", "", "the user who must log in")
	f.StringVar(&o.UsernameClaim, "username-claim", "", "the ID token claim that names the user (default preferred_username)")
	f.StringVar(&o.TokenDir, "token-dir", "", "the token directory (default "+tokenDirHelp()+")")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{msg: err.Error()} })
	root.AddCommand(a.loginCommand(), a.tokenCommand(), a.statusCommand(), a.whoamiCommand(), a.logoutCommand(), a.devCommand())
	return root
}

func configPathHelp() string {
	if p, err := defaultConfigPath(); err == nil {
		return p
	}
	return "$XDG_CONFIG_HOME/authkit/config.toml"
}

func tokenDirHelp() string {
	if d, err := auth.DefaultTokenDir(); err == nil {
		return d
	}
	return "$XDG_CACHE_HOME/authkit"
}

// config reads the configuration file, once, and notes the flags given.
func (a *app) config(cmd *cobra.Command) (*configFile, error) {
	if a.cfg != nil {
		return a.cfg, nil
	}
	cmd.Flags().Visit(func(fl *pflag.Flag) { a.flagSet.set[fl.Name] = true })
	path, explicit := a.configPath, a.configPath != ""
	if !explicit {
		if v := a.getenv("AUTHKIT_CONFIG"); v != "" {
			path, explicit = v, true
		} else if p, err := defaultConfigPath(); err == nil {
			path = p
		} else {
			a.cfg, a.cfgPath = &configFile{}, "the config file"
			return a.cfg, nil
		}
	}
	cfg, err := loadConfig(path, explicit, func(msg string) { fmt.Fprintf(a.stderr, "authkit: warning: %s\n", msg) })
	if err != nil {
		return nil, err
	}
	a.cfg, a.cfgPath = cfg, path
	return cfg, nil
}

// active is the profile in use: --profile, else AUTHKIT_PROFILE, else the
// file's default, else "default". named says --profile or AUTHKIT_PROFILE
// chose it.
func (a *app) active(cfg *configFile) (name string, named bool) {
	switch {
	case a.profile != "":
		return a.profile, true
	case a.getenv("AUTHKIT_PROFILE") != "":
		return a.getenv("AUTHKIT_PROFILE"), true
	case cfg.Profile != "":
		return cfg.Profile, false
	}
	return defaultProfile, false
}

// selected resolves the one profile a command works on.
func (a *app) selected(cmd *cobra.Command) (*profile, error) {
	cfg, err := a.config(cmd)
	if err != nil {
		return nil, err
	}
	name, named := a.active(cfg)
	return resolve(cfg, a.cfgPath, name, true, true, !named, envOverrides(a.getenv), a.flagSet, a.getenv)
}

// resolved is one profile of a listing, or why it cannot be used.
type resolved struct {
	name string
	p    *profile
	err  error
}

// all resolves every profile of the file (the environment and the flags
// apply to the active one only), or the active one alone when the file
// has none or --profile or AUTHKIT_PROFILE names one.
func (a *app) all(cmd *cobra.Command) ([]resolved, error) {
	cfg, err := a.config(cmd)
	if err != nil {
		return nil, err
	}
	name, named := a.active(cfg)
	if len(cfg.Profiles) == 0 || named {
		p, err := a.selected(cmd)
		if err != nil {
			return nil, err
		}
		return []resolved{{name: p.Name, p: p}}, nil
	}
	var out []resolved
	for _, n := range cfg.names() {
		// Every profile: the unscoped secrets go to none of them, unless
		// the file holds only the one, which they can only be meant for.
		p, err := resolve(cfg, a.cfgPath, n, n == name, len(cfg.Profiles) == 1, n == name, envOverrides(a.getenv), a.flagSet, a.getenv)
		out = append(out, resolved{name: n, p: p, err: err})
	}
	return out, nil
}

// quick is the context of a command that asks nobody anything.
func (a *app) quick(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, a.timeout)
}

// readSecret asks for a secret on the terminal without echo.
func (a *app) readSecret(prompt string) (string, error) {
	f, ok := a.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", fmt.Errorf("%w: no terminal to ask for it (set AUTHKIT_PASSWORD)", auth.ErrLoginRequired)
	}
	fmt.Fprint(a.stderr, prompt)
	b, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(a.stderr)
	return string(b), err
}

// readLine asks for one line on the terminal.
func (a *app) readLine(prompt string) (string, error) {
	if !isTerminal(a.stdin) {
		return "", fmt.Errorf("%w: no terminal to ask for it", auth.ErrLoginRequired)
	}
	fmt.Fprint(a.stderr, prompt)
	line, err := bufio.NewReader(a.stdin).ReadString('\n')
	return strings.TrimSpace(line), err
}
