// Command authkit logs a person in once and hands a valid access token to
// every program they run: shells, scripts and kubectl.
//
//	go install github.com/authkit-go/authkit/cmd/authkit@latest
//
//	authkit login --demo        # try it: an identity provider embedded in the command
//	authkit login               # device code (QR code, countdown) or --flow browser
//	authkit token               # a valid access token on stdout, refreshed silently
//	authkit status              # who is logged in where, and until when; never a token
//	authkit whoami              # the verified username and the issuer
//	authkit logout [--all]      # revoke at the provider, delete the local login
//
// Profiles are read from os.UserConfigDir()/authkit/config.toml (override
// with --config or AUTHKIT_CONFIG):
//
//	profile = "work"            # the default profile
//
//	[profiles.work]
//	issuer    = "https://sso.example.com"
//	client_id = "authkit-cli"
//	flow      = "device"        # device | browser | client-credentials | password
//	scopes    = ["api"]         # added to the flow's defaults
//	audiences = ["https://hub.example.com"]
//	username  = "ada"           # only this user may log in (optional)
//	username_claim = "email"    # the ID token claim naming the user (default preferred_username)
//
// For the profile in use (--profile, AUTHKIT_PROFILE, the file's "profile",
// else "default"), flags (--issuer, --client-id, --flow, --scope,
// --audience, --username, --username-claim, --token-dir) override the
// environment (AUTHKIT_ISSUER, AUTHKIT_CLIENT_ID, AUTHKIT_FLOW,
// AUTHKIT_SCOPES, AUTHKIT_AUDIENCES, AUTHKIT_USERNAME,
// AUTHKIT_USERNAME_CLAIM, AUTHKIT_TOKEN_DIR), which overrides the file.
// Secrets come from AUTHKIT_<PROFILE>_CLIENT_SECRET and
// AUTHKIT_<PROFILE>_PASSWORD (for that profile), AUTHKIT_CLIENT_SECRET and
// AUTHKIT_PASSWORD (for the profile in use only; for none under
// logout --all or status), or the terminal; a client_secret written in the
// file makes authkit warn while the file is readable by others.
//
// Logins are kept in a token directory shared with the programs that use
// authkit's FileStore: os.UserCacheDir()/authkit by default (auth.DefaultTokenDir).
//
// Prompts and progress go to stderr, data to stdout. Exit codes: 0 ok,
// 1 error, 2 usage or configuration error, 3 login required, 130 interrupted
// (Ctrl-C), 143 terminated.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		signal.Stop(sigs) // a second Ctrl-C ends the process at once
		cancel(signalError{sig})
	}()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv))
}
