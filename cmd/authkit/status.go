package main

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/authkit-go/authkit/auth"
)

// profileStatus is one profile in authkit status: never a token.
type profileStatus struct {
	Profile            string     `json:"profile"`
	Issuer             string     `json:"issuer"`
	ClientID           string     `json:"client_id"`
	Flow               string     `json:"flow"`
	LoggedIn           bool       `json:"logged_in"`
	Username           string     `json:"username,omitempty"`
	Scopes             []string   `json:"scopes,omitempty"`
	AccessTokenExpiry  *time.Time `json:"access_token_expiry,omitempty"`
	RefreshTokenExpiry *time.Time `json:"refresh_token_expiry,omitempty"`
	HasRefreshToken    bool       `json:"has_refresh_token"`
	Error              string     `json:"error,omitempty"`

	flag string // the --profile flag that names it, if needed
}

func (a *app) statusCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show each profile's login: user, scopes, expiries (never a token)",
		Long: `status shows, for each profile of the config file (or the one named), whether
it is logged in, as whom, with which scopes, and until when its access and
refresh tokens are valid. It refreshes an expired access token as token
would, never prompts, and never prints a token. It exits with code 3 when a
profile shown is not logged in.`,
		Example: `  authkit status
  authkit status --profile work --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ps, err := a.all(cmd)
			if err != nil {
				return err
			}
			var out []profileStatus
			missing := 0
			for _, p := range ps {
				st := a.status(cmd, p)
				if !st.LoggedIn {
					missing++
				}
				out = append(out, st)
			}
			if asJSON {
				if err := writeJSON(a.stdout, out); err != nil {
					return err
				}
			} else {
				a.printStatus(out)
			}
			if missing > 0 {
				return fmt.Errorf("%w: %d of %d profiles not logged in", auth.ErrLoginRequired, missing, len(out))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON on stdout")
	return cmd
}

// status reads one profile's login without prompting.
func (a *app) status(cmd *cobra.Command, p *profile) profileStatus {
	st := profileStatus{Profile: p.Name, Issuer: issuerOf(p), ClientID: p.ClientID, Flow: p.Flow, flag: profileFlag(p)}
	s, err := a.open(p, handlerOptions{})
	if err != nil {
		st.Error = oneLine(err.Error())
		return st
	}
	defer s.close()
	ctx, cancel := a.quick(cmd.Context())
	defer cancel()
	tok, _, err := s.token(ctx, false, a.timeout)
	switch {
	case isLoginRequired(err):
		return st
	case err != nil:
		st.Error = oneLine(err.Error())
		return st
	}
	st.LoggedIn, st.Username = true, s.h.Username()
	st.Scopes = strings.Fields(tok.Scope)
	st.HasRefreshToken = !tok.RefreshToken.IsZero()
	if !tok.Expiry.IsZero() {
		e := tok.Expiry.UTC()
		st.AccessTokenExpiry = &e
	}
	if !tok.RefreshExpiry.IsZero() {
		e := tok.RefreshExpiry.UTC()
		st.RefreshTokenExpiry = &e
	}
	return st
}

func (a *app) printStatus(sts []profileStatus) {
	now := time.Now()
	for i, st := range sts {
		if i > 0 {
			fmt.Fprintln(a.stdout)
		}
		state := "not logged in"
		switch {
		case st.LoggedIn && st.Username != "":
			state = "logged in as " + st.Username
		case st.LoggedIn:
			state = "logged in as client " + st.ClientID
		case st.Error != "":
			state = "unknown (" + st.Error + ")"
		}
		fmt.Fprintf(a.stdout, "%s: %s\n", st.Profile, state)
		tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "  issuer\t%s\n", st.Issuer)
		fmt.Fprintf(tw, "  client\t%s (%s)\n", st.ClientID, st.Flow)
		if st.LoggedIn {
			scopes := strings.Join(st.Scopes, " ")
			if scopes == "" {
				scopes = "(not stated by the provider)"
			}
			fmt.Fprintf(tw, "  scopes\t%s\n", scopes)
			fmt.Fprintf(tw, "  access token\t%s\n", until(st.AccessTokenExpiry, now, "no expiry"))
			rt := "none"
			if st.HasRefreshToken {
				rt = until(st.RefreshTokenExpiry, now, "valid, no expiry stated")
			}
			fmt.Fprintf(tw, "  refresh token\t%s\n", rt)
		} else if st.Error == "" {
			fmt.Fprintf(tw, "  \trun: authkit login%s\n", st.flag)
		}
		_ = tw.Flush()
	}
}

// until describes an expiry.
func until(t *time.Time, now time.Time, none string) string {
	if t == nil {
		return none
	}
	return fmt.Sprintf("valid until %s (in %s)", t.Local().Format("2006-01-02 15:04:05 MST"), remaining(t.Sub(now)))
}

func (a *app) whoamiCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "whoami",
		Short: "Print the verified username and the issuer",
		Long: `whoami prints the username named by the provider's verified ID token and the
issuer, separated by a tab (for a client acting as itself: "client <id>").
It never prompts: without a usable login it exits with code 3.`,
		Example: `  authkit whoami
  user=$(authkit whoami | cut -f1)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, _, err := a.validToken(cmd, false)
			if err != nil {
				return err
			}
			defer s.close()
			_, err = fmt.Fprintf(a.stdout, "%s\t%s\n", s.user(), issuerOf(s.p))
			return err
		},
	}
	return cmd
}

func (a *app) logoutCommand() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "logout",
		Short: "Revoke the login at the provider and delete it here",
		Long: `logout revokes the profile's refresh and access tokens at the provider's
revocation endpoint (RFC 7009) and deletes the login from the token directory.
With --all it does so for every profile of the config file. When the provider
cannot revoke (it has no revocation endpoint, or it fails), the local login is
deleted anyway and a warning says so; the exit code is still 0.`,
		Example: `  authkit logout
  authkit logout --profile work
  authkit logout --all`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if all && (a.profile != "" || a.getenv("AUTHKIT_PROFILE") != "") {
				return usagef("--all and --profile exclude each other")
			}
			var ps []*profile
			var err error
			if all {
				ps, err = a.all(cmd)
			} else {
				var p *profile
				p, err = a.selected(cmd)
				ps = []*profile{p}
			}
			if err != nil {
				return err
			}
			var errs []error
			for _, p := range ps {
				errs = append(errs, a.logout(cmd, p))
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "log out of every profile of the config file")
	return cmd
}

// logout ends one profile's login.
func (a *app) logout(cmd *cobra.Command, p *profile) error {
	s, err := a.open(p, handlerOptions{})
	if err != nil {
		return err
	}
	defer s.close()
	ctx, cancel := a.quick(cmd.Context())
	defer cancel()
	// Reading the login first names its user, so that Logout also ends
	// the same user's login under a pinned username.
	_, _, terr := s.token(ctx, false, a.timeout)
	err = s.h.Logout(ctx)
	switch {
	case errors.Is(err, auth.ErrNotRevoked):
		fmt.Fprintf(a.stderr, "authkit: warning: profile %q: the provider did not revoke the tokens: %s\n", p.Name, oneLine(err.Error()))
		fmt.Fprintf(a.stderr, "Logged out of profile %q here; the provider may accept its tokens until they expire.\n", p.Name)
		return nil
	case err != nil:
		return fmt.Errorf("profile %q: %w", p.Name, err)
	case isLoginRequired(terr):
		fmt.Fprintf(a.stderr, "Profile %q was not logged in; nothing left to revoke.\n", p.Name)
	default:
		fmt.Fprintf(a.stderr, "Logged out of profile %q: the tokens are revoked at the provider and deleted here.\n", p.Name)
	}
	return nil
}
