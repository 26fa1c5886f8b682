package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/authkit-go/authkit/auth"
)

// Formats of authkit token.
const (
	formatRaw     = "raw"
	formatHeader  = "header"
	formatJSON    = "json"
	formatKubectl = "kubectl"
)

func (a *app) tokenCommand() *cobra.Command {
	var format string
	var login bool
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Print a valid access token, refreshed silently when needed",
		Long: `token prints a valid access token of the profile on stdout, refreshing it
silently when it is about to expire. It never prompts unless --login is
given: without a usable login it exits with code 3 ("login required").

Formats:
  raw      the token alone (the default)
  header   an HTTP header line: "Authorization: Bearer <token>"
  json     {"access_token", "token_type", "expiry", "scope"} (never the refresh token)
  kubectl  a client.authentication.k8s.io/v1 ExecCredential with
           expirationTimestamp, for kubectl's exec credential plugins`,
		Example: `  curl -H "$(authkit token --format header)" https://hub.example.com/api
  authkit token --profile work --format json

  # ~/.kube/config: authkit as kubectl's credential plugin
  users:
  - name: sso
    user:
      exec:
        apiVersion: client.authentication.k8s.io/v1
        command: authkit
        args: [token, --profile, work, --format, kubectl]
        interactiveMode: Never`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch format {
			case formatRaw, formatHeader, formatJSON, formatKubectl:
			default:
				return usagef("--format %q is not one of raw, header, json, kubectl", format)
			}
			s, tok, err := a.validToken(cmd, login, handlerOptions{})
			if err != nil {
				return err
			}
			defer s.close()
			return writeToken(a.stdout, tok, format)
		},
	}
	cmd.Flags().StringVarP(&format, "format", "o", formatRaw, "raw, header, json or kubectl")
	cmd.Flags().BoolVar(&login, "login", false, "log in (prompting on stderr) when no token can be had silently")
	return cmd
}

// writeToken prints tok's access token in format.
func writeToken(w io.Writer, tok *auth.Token, format string) error {
	access := tok.AccessToken.Reveal()
	typ := tok.TokenType
	if typ == "" || strings.EqualFold(typ, "bearer") {
		typ = "Bearer"
	}
	switch format {
	case formatHeader:
		_, err := fmt.Fprintf(w, "Authorization: %s %s\n", typ, access)
		return err
	case formatJSON:
		v := struct {
			AccessToken string     `json:"access_token"`
			TokenType   string     `json:"token_type"`
			Expiry      *time.Time `json:"expiry,omitempty"`
			Scope       string     `json:"scope,omitempty"`
		}{AccessToken: access, TokenType: typ, Scope: tok.Scope}
		if !tok.Expiry.IsZero() {
			e := tok.Expiry.UTC()
			v.Expiry = &e
		}
		return writeJSON(w, v)
	case formatKubectl:
		return writeJSON(w, execCredential(access, tok.Expiry))
	}
	_, err := fmt.Fprintln(w, access)
	return err
}

// execCredentialStatus is the status of a client.authentication.k8s.io/v1
// ExecCredential
// (https://kubernetes.io/docs/reference/config-api/client-authentication.v1/).
type execCredentialStatus struct {
	Token               string `json:"token"`
	ExpirationTimestamp string `json:"expirationTimestamp,omitempty"`
}

type execCredentialV1 struct {
	APIVersion string               `json:"apiVersion"`
	Kind       string               `json:"kind"`
	Status     execCredentialStatus `json:"status"`
}

// execCredential is what kubectl reads from an exec credential plugin: the
// token and, so that kubectl asks again in time, its expiry (RFC 3339).
func execCredential(token string, expiry time.Time) execCredentialV1 {
	c := execCredentialV1{APIVersion: "client.authentication.k8s.io/v1", Kind: "ExecCredential",
		Status: execCredentialStatus{Token: token}}
	if !expiry.IsZero() {
		c.Status.ExpirationTimestamp = expiry.UTC().Format(time.RFC3339)
	}
	return c
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
