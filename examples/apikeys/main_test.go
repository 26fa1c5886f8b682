package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		requests int // lines printed by -v
	}{
		{"quiet", nil, 0},
		{"verbose", []string{"-v"}, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := run(context.Background(), tt.args, &out); err != nil {
				t.Fatalf("run: %v\n%s", err, out.String())
			}
			got := out.String()
			for _, want := range []string{
				"hub headers:             X-Api-Key: …(redacted); X-Api-Key-Id: key-7f3a\n",
				"message service metadata: x-api-key: …(redacted); x-api-key-id: key-7f3a\n",
				"hub: GET /api/me -> key-7f3a (user ci-bot, by api-key)\n",
				"hub: GET /api/projects -> 2 projects\n",
				"access manager: GET /api/permissions -> [projects:read messages:send]\n",
				"message service: WhoAmI -> key-7f3a (user ci-bot, by api-key)\n",
				"wrong key: hub refused it (GET /api/me: 401 Unauthorized",
				"wrong key: message service refused it (Unauthenticated)\n",
				"platform counters: hub {Authenticated:2 Rejected:1 Failed:0}, access manager {Authenticated:1 Rejected:0 Failed:0}, message service {Authenticated:1 Rejected:1 Failed:0}\n",
			} {
				if !strings.Contains(got, want) {
					t.Errorf("output lacks %q\n%s", want, got)
				}
			}
			if n := strings.Count(got, "  > "); n != tt.requests {
				t.Errorf("%d request lines, want %d\n%s", n, tt.requests, got)
			}
			for _, secret := range []string{keySecret, "not-the-right-secret"} {
				if strings.Contains(got, secret) {
					t.Errorf("output shows a secret\n%s", got)
				}
			}
		})
	}
}

func TestRunBadFlag(t *testing.T) {
	if err := run(context.Background(), []string{"-nope"}, &bytes.Buffer{}); err == nil {
		t.Error("no error for an unknown flag")
	}
}
