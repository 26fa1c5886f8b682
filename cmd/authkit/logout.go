package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/authkit-go/authkit/auth"
)

func (a *app) logoutCommand() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "logout",
		Short: "Revoke the login at the provider and delete it here",
		Long: `logout revokes the profile's refresh and access tokens at the provider's
revocation endpoint (RFC 7009) and deletes the login from the token directory.
With --all it does so for every profile of the config file. When the provider
cannot revoke (it has no revocation endpoint, it fails or it does not answer),
the local login is deleted anyway, a warning says so, and the exit code is 0.
A login is found by the profile's settings as they are now (issuer, client,
username, scopes, audiences).`,
		Example: `  authkit logout
  authkit logout --profile work
  authkit logout --all`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if all && (a.profile != "" || a.getenv("AUTHKIT_PROFILE") != "") {
				return usagef("--all and --profile exclude each other")
			}
			rs := []resolved{}
			if all {
				var err error
				if rs, err = a.all(cmd); err != nil {
					return err
				}
			} else {
				p, err := a.selected(cmd)
				if err != nil {
					return err
				}
				rs = append(rs, resolved{name: p.Name, p: p})
			}
			var errs []error
			for _, r := range rs {
				switch {
				case r.err != nil: // its configuration: the error names the profile
					errs = append(errs, r.err)
				default:
					if err := a.logout(cmd, r.p); err != nil {
						errs = append(errs, fmt.Errorf("profile %q: %w", r.name, err))
					}
				}
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "log out of every profile of the config file")
	return cmd
}

// logout ends one profile's login.
func (a *app) logout(cmd *cobra.Command, p *profile) error {
	s, err := a.open(p, handlerOptions{readOnly: true})
	if err != nil {
		return err
	}
	defer s.close()
	// Reading the login first names its user, so that Logout also ends
	// the same user's login under a pinned username.
	_, _, terr := s.token(cmd.Context(), false, a.timeout)
	ctx, cancel := a.quick(cmd.Context())
	defer cancel()
	err = s.h.Logout(ctx)
	switch {
	case errors.Is(err, auth.ErrNotRevoked):
		fmt.Fprintf(a.stderr, "authkit: warning: profile %q: the provider did not revoke the tokens: %s\n", p.Name, oneLine(err.Error()))
		fmt.Fprintf(a.stderr, "Logged out of profile %q here; the provider may accept its tokens until they expire.\n", p.Name)
		return nil
	case err != nil:
		return err
	case isLoginRequired(terr):
		fmt.Fprintf(a.stderr, "No login of profile %q (as configured now) was stored; nothing to revoke.\n", p.Name)
	default:
		fmt.Fprintf(a.stderr, "Logged out of profile %q: the tokens are revoked at the provider and deleted here.\n", p.Name)
	}
	return nil
}
