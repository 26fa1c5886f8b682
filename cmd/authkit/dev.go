package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/authkit-go/authkit/authtest"
)

// The development provider's clients and users.
const (
	devProfile     = "dev"
	devClient      = "authkit-cli"
	devService     = "svc"
	devSecret      = "svc-secret"
	devUser        = "ada"
	devPassword    = "ada-password"
	devApproveWait = 2 * time.Second
)

func (a *app) devCommand() *cobra.Command {
	var write bool
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run an identity provider for development on loopback, until Ctrl-C",
		Long: `dev runs authtest's identity provider — OIDC discovery, device code, browser
login with PKCE, password, client credentials, refresh with rotation,
revocation — on a free loopback port until Ctrl-C, and prints its issuer,
clients, users and a ready profile. Device codes are approved as ` + devUser + ` after
` + devApproveWait.String() + `, so that authkit login needs no one at a phone; the browser
login shows the provider's login form (` + devUser + ` / ` + devPassword + `).

With --write-config the profile "` + devProfile + `" is written to the config file (replaced
if there), so that the other commands use it with --profile ` + devProfile + `.`,
		Example: `  authkit dev --write-config          # in one terminal
  authkit login --profile dev         # in another: approved as ada after 2s
  authkit token --profile dev
  authkit status --profile dev`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			prov := authtest.NewProvider(authtest.ProviderConfig{
				Clients: []authtest.Client{{ID: devClient}, {ID: devService, Secret: devSecret,
					Grants: []string{authtest.GrantClientCredentials}}},
				Users:          []authtest.User{{Username: devUser, Password: devPassword}},
				DeviceInterval: time.Second,
			})
			defer prov.Close()
			prov.AutoApprove(devUser, devApproveWait)
			profile := fmt.Sprintf("[profiles.%s]\nissuer    = %q\nclient_id = %q\n", devProfile, prov.Issuer(), devClient)
			out := a.stdout
			fmt.Fprintf(out, "authkit dev: an identity provider for development at %s (Ctrl-C to stop)\n\n", prov.Issuer())
			fmt.Fprintf(out, "  clients  %s (public: device code, browser login, password)\n", devClient)
			fmt.Fprintf(out, "           %s, secret %q (client credentials)\n", devService, devSecret)
			fmt.Fprintf(out, "  users    %s, password %q; device codes are approved as %s after %s\n\n", devUser, devPassword, devUser, devApproveWait)
			if write {
				cfg, err := a.writeDevProfile(profile)
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "Wrote profile %q to %s:\n\n%s\n", devProfile, cfg, profile)
			} else {
				fmt.Fprintf(out, "A profile for it (--write-config writes it to the config file):\n\n%s\n", profile)
			}
			fmt.Fprintf(out, "Then: authkit login --profile %s; authkit token --profile %s\n", devProfile, devProfile)
			<-cmd.Context().Done() // Ctrl-C or SIGTERM
			return nil
		},
	}
	cmd.Flags().BoolVar(&write, "write-config", false, `write the profile "`+devProfile+`" to the config file`)
	return cmd
}

// writeDevProfile puts the dev profile's table in the config file; see
// writeProfile.
func (a *app) writeDevProfile(table string) (string, error) { return a.writeProfile(devProfile, table) }

// writeProfile puts table, the TOML table of profile name, in the config
// file — replacing that profile's table if there, else appending it, and
// leaving the rest of the file as it was — and returns the file's path.
func (a *app) writeProfile(name, table string) (string, error) {
	path := a.configPath
	if path == "" {
		path = a.getenv("AUTHKIT_CONFIG")
	}
	if path == "" {
		p, err := defaultConfigPath()
		if err != nil {
			return "", err
		}
		path = p
	}
	old, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		old = nil
	case err != nil:
		return "", err
	}
	text := string(old)
	// The table: its header and its lines up to the next table.
	re := regexp.MustCompile(`(?ms)^\[profiles\.` + regexp.QuoteMeta(name) + `\]\n.*?(^\[|\z)`)
	if loc := re.FindStringSubmatchIndex(text); loc != nil {
		end := loc[1]
		if loc[2] < loc[3] { // stopped at the next table's "[": keep it
			end = loc[2]
		}
		text = text[:loc[0]] + table + "\n" + text[end:]
	} else {
		if text != "" && !strings.HasSuffix(text, "\n") {
			text += "\n"
		}
		if text != "" {
			text += "\n"
		}
		text += table
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	return path, os.WriteFile(path, []byte(text), 0o600)
}
