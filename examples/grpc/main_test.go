package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
)

var jwtPattern = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+\.`)

func TestRun(t *testing.T) {
	for _, args := range [][]string{nil, {"-v"}} {
		t.Run(strings.Join(append([]string{"args"}, args...), " "), func(t *testing.T) {
			var out bytes.Buffer
			if err := run(context.Background(), args, &out); err != nil {
				t.Fatalf("run: %v\n%s", err, out.String())
			}
			got := out.String()
			want := []string{
				"  [server] /grpc.health.v1.Health/Check by service-account-worker (JWT, scope \"messages:read\"): allowed\n",
				"client worker with scope messages:read: health check -> SERVING\n",
				"  [server] /grpc.health.v1.Health/Check by service-account-reporter (JWT, scope \"reports:write\"): denied\n",
				"client reporter without the scope: health check -> PermissionDenied: /grpc.health.v1.Health/Check needs the scope \"messages:read\"\n",
				"  [server] /grpc.health.v1.Health/Check by ops (API key ops): allowed\n",
				"client with API key \"ops\": health check -> SERVING\n",
				"client without credentials: health check -> Unauthenticated: grpcauth: missing credentials",
			}
			if len(args) > 0 {
				want = append(want, "/grpc.health.v1.Health/Check  {authorization: Bearer eyJhbGci…(redacted)}  -> OK\n",
					"/grpc.health.v1.Health/Check  {x-api-key: …(redacted); x-api-key-id: ops}  -> OK\n")
			}
			for _, w := range want {
				if !strings.Contains(got, w) {
					t.Errorf("output lacks %q\n%s", w, got)
				}
			}
			for _, secret := range []string{"worker-secret", "reporter-secret", "ops-key-"} {
				if strings.Contains(got, secret) {
					t.Errorf("output shows the secret %s…\n%s", secret, got)
				}
			}
			if jwtPattern.MatchString(got) {
				t.Errorf("output shows a JWT\n%s", got)
			}
		})
	}
}
