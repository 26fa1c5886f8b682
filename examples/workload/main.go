// Command workload is a pod with no secret: the only credential it has is
// the service-account token its cluster projects into a file and rotates.
// authkit's Select finds the file (AUTHKIT_FEDERATED_TOKEN_FILE) and the
// client id (AUTHKIT_CLIENT_ID), and sends the token as the client
// assertion of a client credentials grant (RFC 7523 §2.2, the model of
// Azure's and Google's workload identity federation), reading it anew for
// every exchange. The platform's provider trusts the cluster's issuer for
// that one service account.
//
// Everything is embedded (authtest): the cluster's token issuer, the
// platform's provider and the platform. Secrets are masked in everything
// it prints.
//
//	go run ./examples/workload
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/authkit-go/authkit/authtest"
	"github.com/authkit-go/authkit/authtest/platform"
	"github.com/authkit-go/authkit/handlers"
	"github.com/authkit-go/authkit/session"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "workload:", err)
		os.Exit(1)
	}
}

const (
	serviceAccount = "system:serviceaccount:shop:checkout"
	clientID       = "checkout"
	clusterAud     = "api://platform"
)

func run(ctx context.Context, stdout io.Writer) error {
	// The cluster: it signs service-account tokens for clusterAud.
	cluster := authtest.NewProvider(authtest.ProviderConfig{})
	defer cluster.Close()
	// The platform's provider trusts the cluster's issuer, and lets its
	// service account act as the client "checkout".
	prov := authtest.NewProvider(authtest.ProviderConfig{
		Audience:       platform.DefaultAudience,
		TrustedIssuers: []authtest.TrustedIssuer{{Issuer: cluster.Issuer(), Key: cluster.PublicKey(), Audience: clusterAud}},
		Clients:        []authtest.Client{{ID: clientID, Federated: []authtest.Federated{{Issuer: cluster.Issuer(), Subject: serviceAccount}}}},
	})
	defer prov.Close()
	plat, err := platform.New(platform.Config{Provider: prov})
	if err != nil {
		return err
	}
	defer plat.Close()

	// The kubelet projects the token into the pod.
	dir, err := os.MkdirTemp("", "workload-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	tokenFile := filepath.Join(dir, "token")
	generation := 0
	project := func() error {
		now := time.Now()
		generation++
		jwt := cluster.IssueJWT(map[string]any{"iss": cluster.Issuer(), "sub": serviceAccount, "aud": clusterAud,
			"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "jti": fmt.Sprintf("token-%d", generation)})
		tmp := tokenFile + ".new"
		if err := os.WriteFile(tmp, []byte(jwt), 0o600); err != nil {
			return err
		}
		return os.Rename(tmp, tokenFile)
	}
	if err := project(); err != nil {
		return err
	}
	env := map[string]string{"AUTHKIT_FEDERATED_TOKEN_FILE": tokenFile, "AUTHKIT_CLIENT_ID": clientID}
	fmt.Fprintf(stdout, "pod environment: AUTHKIT_FEDERATED_TOKEN_FILE=%s AUTHKIT_CLIENT_ID=%s (no secret)\n", "<dir>/token", clientID)

	// The pod's program.
	h, err := handlers.Select(ctx, handlers.SelectConfig{
		Getenv: func(k string) string { return env[k] },
		OAuth:  handlers.OAuthConfig{Endpoints: handlers.Endpoints{Issuer: prov.Issuer()}},
	})
	if err != nil {
		return err
	}
	defer h.Close()
	fmt.Fprintf(stdout, "credentials from: %s\n", h.Source)
	s, err := session.New(h, session.Config{HubURL: plat.HubURL(), AccessManagerURL: plat.AccessManagerURL()})
	if err != nil {
		return err
	}
	defer s.Close()
	me, err := getMe(ctx, s, plat.HubURL())
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "hub: GET /api/me -> subject %s, client %s\n", me.Subject, me.ClientID)
	req := prov.LastRequest(authtest.EndpointToken)
	fmt.Fprintf(stdout, "token request: grant_type=%s client_id=%s client_assertion_type=%s client_secret sent: %t\n",
		req.Form.Get("grant_type"), req.Form.Get("client_id"), req.Form.Get("client_assertion_type"), req.Form.Has("client_secret"))

	first := req.Form.Get("client_assertion")

	// The kubelet rotates the token; the next exchange reads the new one.
	if err := project(); err != nil {
		return err
	}
	if inv, ok := h.AuthenticationHandler.(interface{ Logout(context.Context) error }); ok {
		inv.Logout(ctx) //nolint:errcheck // drop the token, to exchange again now
	}
	if _, err := getMe(ctx, s, plat.HubURL()); err != nil {
		return err
	}
	rotated, _ := os.ReadFile(tokenFile)
	second := prov.LastRequest(authtest.EndpointToken).Form.Get("client_assertion")
	fmt.Fprintf(stdout, "after rotation: %d token requests; the second sent the rotated token: %t\n",
		prov.Requests(authtest.EndpointToken), second == string(rotated) && second != first)
	return nil
}

// getMe asks the hub who the caller is.
func getMe(ctx context.Context, s *session.Session, hub string) (platform.Me, error) {
	var me platform.Me
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, hub+"/api/me", nil)
	if err != nil {
		return me, err
	}
	resp, err := s.Do(req)
	if err != nil {
		return me, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return me, fmt.Errorf("GET /api/me: %s", resp.Status)
	}
	return me, json.NewDecoder(resp.Body).Decode(&me)
}
