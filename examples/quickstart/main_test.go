package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
)

var jwtPattern = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+\.`)

// rowPattern is a table row in which the handler reached every service
// with every call.
var rowPattern = regexp.MustCompile(`(?m)^(API keys|externally managed JWT|device code|browser login|client credentials|password \+ TOTP|refresh token) +(\S+) +ok 4/4 +ok 4/4 +ok 4/4 +(-|\d+) +(-|\d+)$`)

func TestRun(t *testing.T) {
	for _, args := range [][]string{nil, {"-v"}} {
		t.Run(strings.Join(append([]string{"args"}, args...), " "), func(t *testing.T) {
			var out bytes.Buffer
			if err := run(context.Background(), args, &out); err != nil {
				t.Fatalf("run: %v\n%s", err, out.String())
			}
			got := out.String()
			rows := rowPattern.FindAllStringSubmatch(got, -1)
			users := map[string]string{}
			for _, m := range rows {
				users[m[1]] = m[2]
				if m[1] == "API keys" {
					if m[3] != "-" || m[4] != "-" {
						t.Errorf("API keys row shows fetches or refreshes: %q", m[0])
					}
					continue
				}
				if m[3] == "-" || m[3] == "0" || m[4] == "-" || m[4] == "0" {
					t.Errorf("%s: no fetch or no refresh: %q", m[1], m[0])
				}
			}
			want := map[string]string{
				"API keys": "ci-bot", "externally managed JWT": "grace", "device code": "ada", "browser login": "hedy",
				"client credentials": "service-account-quickstart-service", "password + TOTP": "linus", "refresh token": "margaret",
			}
			for h, u := range want {
				if users[h] != u {
					t.Errorf("row %q: user %q, want %q (or the row failed)\n%s", h, users[h], u, got)
				}
			}
			for _, w := range []string{
				"[device code] To log in, open http://127.0.0.1:",
				"[device code] Your confirmation code is ",
				"[provider]    ada approved code ",
				"[browser login] Opened your browser to log in. If it did not open, visit:\n[browser login] http://127.0.0.1:",
				"[browser login] hedy logged in in her browser (simulated); it shows \"Logged in You are logged in as hedy.",
				"Every handler reached all three services",
				"refused (the 6 expired tokens sent on purpose)",
			} {
				if !strings.Contains(got, w) {
					t.Errorf("output lacks %q\n%s", w, got)
				}
			}
			if len(args) > 0 {
				for _, w := range []string{
					"[password + TOTP] provider: POST /token -> 200 OK\n",
					"[device code] GET http://127.0.0.1:",
					"/api/me  {Authorization: Bearer eyJhbGci…(redacted)}  -> 200 OK\n",
					"[API keys] RPC 127.0.0.1:",
					"{x-api-key: …(redacted); x-api-key-id: key-7f3a}  -> OK\n",
				} {
					if !strings.Contains(got, w) {
						t.Errorf("verbose output lacks %q", w)
					}
				}
			}
			for _, secret := range []string{apiKeySecret, serviceSecret, totpSecret, linusPassword, hedyPassword} {
				if strings.Contains(got, secret) {
					t.Errorf("output shows a secret")
				}
			}
			if jwtPattern.MatchString(got) {
				t.Errorf("output shows a JWT\n%s", got)
			}
		})
	}
}

// A run that cannot finish in time fails with a clear error.
func TestRunTimeout(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"-timeout", "500ms"}, &out)
	if err == nil {
		t.Fatalf("no error\n%s", out.String())
	}
	if !strings.Contains(err.Error(), "handlers failed") || !strings.Contains(err.Error(), "device code:") {
		t.Errorf("error = %v", err)
	}
}
