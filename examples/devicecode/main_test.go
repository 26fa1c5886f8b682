package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/authkit-go/authkit/authtest"
	"github.com/authkit-go/authkit/authtest/platform"
)

var jwtPattern = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+\.`)

func check(t *testing.T, got string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("output lacks %q\n%s", w, got)
		}
	}
	if jwtPattern.MatchString(got) {
		t.Errorf("output shows a JWT\n%s", got)
	}
}

func TestRunEmbedded(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), nil, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	check(t, out.String(),
		"No -issuer given: using an embedded provider at http://127.0.0.1:",
		"To log in, open http://127.0.0.1:",
		"Your confirmation code is ",
		"[embedded provider] ada approved code ",
		"Logged in as ada. Access token Bearer eyJhbGci…(redacted), valid until ",
		"refresh token received (redacted).\n",
		"hub: GET /api/me -> ada (by jwt)\n",
		"hub counters: 1 authenticated, 0 refused\n",
	)
}

// With -issuer the program discovers a provider it does not own; an
// authtest provider stands in for it, approving every code at once.
func TestRunWithIssuer(t *testing.T) {
	prov := authtest.NewProvider(authtest.ProviderConfig{
		Audience:       platform.DefaultAudience,
		DeviceInterval: time.Second,
		Clients:        []authtest.Client{{ID: "cli", Secret: "cli-secret-93be"}},
		Users:          []authtest.User{{Username: "grace", Password: "unused"}},
	})
	defer prov.Close()
	prov.AutoApprove("grace", 0)
	plat, err := platform.New(platform.Config{Provider: prov})
	if err != nil {
		t.Fatal(err)
	}
	defer plat.Close()

	var out bytes.Buffer
	args := []string{"-issuer", prov.Issuer(), "-client-id", "cli", "-client-secret", "cli-secret-93be", "-hub", plat.HubURL()}
	if err := run(context.Background(), args, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	got := out.String()
	check(t, got, "To log in, open "+prov.VerificationURL(), "Logged in as grace.", "hub: GET /api/me -> grace (by jwt)\n")
	if strings.Contains(got, "embedded") || strings.Contains(got, "cli-secret-93be") {
		t.Errorf("unexpected output\n%s", got)
	}
	if n := prov.GrantRequests(authtest.GrantDeviceCode); n < 1 {
		t.Errorf("device code polls = %d", n)
	}
	if am := prov.LastRequest(authtest.EndpointToken).AuthMethod; am != authtest.AuthMethodBasic {
		t.Errorf("client authentication %q, want %q", am, authtest.AuthMethodBasic)
	}
}

func TestRunFlagErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"issuer without client id", []string{"-issuer", "https://sso.example.com"}, "-issuer needs -client-id"},
		{"client id without issuer", []string{"-client-id", "cli"}, "-client-id and -hub need -issuer"},
		{"unknown flag", []string{"-nope"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(context.Background(), tt.args, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want %q", err, tt.want)
			}
		})
	}
}
