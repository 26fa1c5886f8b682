package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/internal/netpolicy"
)

// profileStatus is one profile in authkit status: never a token.
type profileStatus struct {
	Profile            string     `json:"profile"`
	Issuer             string     `json:"issuer,omitempty"`
	ClientID           string     `json:"client_id,omitempty"`
	Flow               string     `json:"flow,omitempty"`
	LoggedIn           bool       `json:"logged_in"`
	Username           string     `json:"username,omitempty"`
	Scopes             []string   `json:"scopes,omitempty"`
	AccessTokenExpiry  *time.Time `json:"access_token_expiry,omitempty"`
	RefreshTokenExpiry *time.Time `json:"refresh_token_expiry,omitempty"`
	HasRefreshToken    bool       `json:"has_refresh_token"`
	// Refreshed: the stored access token was no longer valid, and status
	// refreshed it (and saved the result) to report on a valid one.
	Refreshed bool   `json:"refreshed,omitempty"`
	Error     string `json:"error,omitempty"`

	user string // who, for people: the username or what stands for it
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
would, but never logs in, never prompts and never prints a token (a
client-credentials profile has no login to read: it gets a token). It exits
with code 1 when a profile could not be read (a configuration or network
error, shown in its entry), else 3 when a profile is not logged in.`,
		Example: `  authkit status
  authkit status --profile work --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rs, err := a.all(cmd)
			if err != nil {
				return err
			}
			if len(rs) == 1 && rs[0].err != nil {
				return rs[0].err // the one profile's configuration is wrong: exit 2
			}
			var out []profileStatus
			failed, missing := 0, 0
			for _, r := range rs {
				st := a.status(cmd, r)
				switch {
				case st.Error != "":
					failed++
				case !st.LoggedIn:
					missing++
				}
				out = append(out, st)
			}
			if asJSON {
				if err := writeJSON(a.stdout, out); err != nil {
					return err
				}
			} else {
				printStatus(a.stdout, out)
			}
			switch {
			case failed > 0:
				return fmt.Errorf("%d of %d profiles could not be read", failed, len(out))
			case missing == 1 && len(out) == 1:
				return &loginRequiredError{msg: fmt.Sprintf("profile %q is not logged in: run 'authkit login%s'", out[0].Profile, out[0].flag), err: auth.ErrLoginRequired}
			case missing > 0:
				return &loginRequiredError{msg: fmt.Sprintf("%d of %d profiles are not logged in", missing, len(out)), err: auth.ErrLoginRequired}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON on stdout")
	return cmd
}

// status reads one profile's login without logging in.
func (a *app) status(cmd *cobra.Command, r resolved) profileStatus {
	st := profileStatus{Profile: r.name}
	if r.err != nil {
		st.Error = oneLine(r.err.Error())
		return st
	}
	p := r.p
	st.Issuer, st.ClientID, st.Flow, st.flag = issuerOf(p), p.ClientID, p.Flow, profileFlag(p)
	s, err := a.open(p, handlerOptions{readOnly: true})
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
	st.LoggedIn, st.Username, st.user = true, s.h.Username(), s.user()
	st.Refreshed = s.h.Stats().Fetches > 0 // TestStatusSaysItRefreshed
	st.Scopes = strings.Fields(tok.Scope)
	st.HasRefreshToken = !tok.RefreshToken.IsZero()
	// One format for both times: UTC, to the second (testdata/script/status_json.txtar).
	if !tok.Expiry.IsZero() {
		e := tok.Expiry.UTC().Truncate(time.Second)
		st.AccessTokenExpiry = &e
	}
	if !tok.RefreshExpiry.IsZero() {
		e := tok.RefreshExpiry.UTC().Truncate(time.Second)
		st.RefreshTokenExpiry = &e
	}
	return st
}

func printStatus(w io.Writer, sts []profileStatus) {
	now := time.Now()
	for i, st := range sts {
		if i > 0 {
			fmt.Fprintln(w)
		}
		state := "not logged in"
		switch {
		case st.LoggedIn:
			state = "logged in as " + st.user
		case st.Error != "":
			state = "unknown: " + netpolicy.TerminalSafe(st.Error)
		}
		fmt.Fprintf(w, "%s: %s\n", st.Profile, state)
		if st.Issuer == "" {
			continue // its configuration is wrong: the error says how
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "  issuer\t%s\n", st.Issuer)
		fmt.Fprintf(tw, "  client\t%s (%s)\n", st.ClientID, st.Flow)
		switch {
		case st.LoggedIn:
			scopes := netpolicy.TerminalSafe(strings.Join(st.Scopes, " "))
			if scopes == "" {
				scopes = "(not stated by the provider)"
			}
			fmt.Fprintf(tw, "  scopes\t%s\n", scopes)
			refreshed := ""
			if st.Refreshed {
				refreshed = " (refreshed just now: the stored one had expired)"
			}
			fmt.Fprintf(tw, "  access token\t%s%s\n", until(st.AccessTokenExpiry, now, "no expiry"), refreshed)
			rt := "none"
			if st.HasRefreshToken {
				rt = until(st.RefreshTokenExpiry, now, "valid, no expiry stated")
			}
			fmt.Fprintf(tw, "  refresh token\t%s\n", rt)
		case st.Error == "":
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
	return fmt.Sprintf("valid until %s (in %s)", t.Local().Format("2006-01-02 15:04:05 MST"), clock(t.Sub(now)))
}
