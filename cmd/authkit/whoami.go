package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func (a *app) whoamiCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Print the username and the issuer",
		Long: `whoami prints the username and the issuer, separated by a tab. The username
is the one the provider's ID token names, verified (for the password flow:
the configured username; for a client acting as itself: "client <id>").
It never logs in and never prompts: without a usable login it exits with
code 3.`,
		Example: `  authkit whoami
  user=$(authkit whoami | cut -f1)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, _, err := a.validToken(cmd, false, handlerOptions{readOnly: true})
			if err != nil {
				return err
			}
			defer s.close()
			_, err = fmt.Fprintf(a.stdout, "%s\t%s\n", s.user(), issuerOf(s.p))
			return err
		},
	}
}
