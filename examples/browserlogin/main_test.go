package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/authkit-go/authkit/authtest"
	"github.com/authkit-go/authkit/authtest/platform"
)

var jwtPattern = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+\.`)
var codeParam = regexp.MustCompile(`[?&]code=`)

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
	if codeParam.MatchString(got) {
		t.Errorf("output shows an authorization code\n%s", got)
	}
}

func TestRunEmbedded(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), nil, &out, nil); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	check(t, out.String(),
		"No -issuer given: using an embedded provider at http://127.0.0.1:",
		"Opened your browser to log in. If it did not open, visit:\n\n  http://127.0.0.1:",
		"/authorize?client_id=browserlogin-example&code_challenge=",
		"Logged in as ada. Access token Bearer eyJhbGci…(redacted), valid until ",
		"refresh token received (redacted).\n",
		"hub: GET /api/me -> ada (by jwt)\n",
		"hub counters: 1 authenticated, 0 refused\n",
	)
}

// issuer is a provider the program does not own (an authtest provider
// stands in for it), with grace's browser.
func issuer(t *testing.T) (*authtest.Provider, *platform.Platform) {
	t.Helper()
	prov := authtest.NewProvider(authtest.ProviderConfig{
		Audience:       platform.DefaultAudience,
		DeviceInterval: time.Second,
		Clients:        []authtest.Client{{ID: "desktop", Secret: "desktop-secret-5c1e"}},
		Users:          []authtest.User{{Username: "grace", Password: "cobol-1959"}},
	})
	t.Cleanup(prov.Close)
	plat, err := platform.New(platform.Config{Provider: prov})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(plat.Close)
	return prov, plat
}

// With -issuer, a fixed -port and -welcome, the browser ends on the
// welcome page, which names the user.
func TestRunWithIssuer(t *testing.T) {
	prov, plat := issuer(t)
	welcome := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "<html><body><h1>Welcome, %s</h1></body></html>", r.URL.Query().Get("user"))
	}))
	defer welcome.Close()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	browser := prov.NewBrowser("grace", "cobol-1959")
	var out bytes.Buffer
	args := []string{"-issuer", prov.Issuer(), "-client-id", "desktop", "-client-secret", "desktop-secret-5c1e",
		"-hub", plat.HubURL(), "-port", fmt.Sprint(port), "-welcome", welcome.URL + "/hello"}
	if err := run(context.Background(), args, &out, browser.Open); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	got := out.String()
	check(t, got, fmt.Sprintf("redirect_uri=http%%3A%%2F%%2F127.0.0.1%%3A%d%%2Fcallback", port),
		"Logged in as grace.", "hub: GET /api/me -> grace (by jwt)\n")
	if strings.Contains(got, "embedded") || strings.Contains(got, "desktop-secret-5c1e") {
		t.Errorf("unexpected output\n%s", got)
	}
	page := browser.LastPage()
	if page.URL != welcome.URL+"/hello?user=grace" || page.Text() != "Welcome, grace" {
		t.Errorf("the browser ended at %s showing %q, want the welcome page", page.URL, page.Text())
	}
	if am := prov.LastRequest(authtest.EndpointToken).AuthMethod; am != authtest.AuthMethodBasic {
		t.Errorf("client authentication %q, want %q", am, authtest.AuthMethodBasic)
	}
}

// With -device-fallback, a browser that cannot be opened turns the login
// into a device code login.
func TestRunDeviceFallback(t *testing.T) {
	prov, _ := issuer(t)
	prov.AutoApprove("grace", 0)
	noBrowser := func(context.Context, string) error { return errors.New("no browser here") }
	var out bytes.Buffer
	args := []string{"-issuer", prov.Issuer(), "-client-id", "desktop", "-client-secret", "desktop-secret-5c1e", "-device-fallback"}
	if err := run(context.Background(), args, &out, noBrowser); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	check(t, out.String(), "Logging in with a code instead (the browser could not be opened: no browser here).",
		"To log in, open "+prov.VerificationURL(), "Logged in as grace.")
	if n := prov.GrantRequests(authtest.GrantAuthorizationCode); n != 0 {
		t.Errorf("%d code exchanges, want none", n)
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
		{"welcome not a URL", []string{"-welcome", "javascript:alert(1)"}, "-welcome must be an http(s) URL"},
		{"a port that is not one", []string{"-issuer", "https://sso.example.com", "-client-id", "cli", "-port", "70000"}, "RedirectPorts holds 70000"},
		{"unknown flag", []string{"-nope"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(context.Background(), tt.args, &bytes.Buffer{}, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want %q", err, tt.want)
			}
		})
	}
}
