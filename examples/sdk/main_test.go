package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/authkit-go/authkit/authtest"
	"github.com/authkit-go/authkit/authtest/platform"
)

// The SDK's users configure it through the environment only; each way
// reaches all three services as the right identity.
func TestPersonaSDK(t *testing.T) {
	prov := authtest.NewProvider(authtest.ProviderConfig{
		Audience: platform.DefaultAudience, DeviceInterval: time.Second,
		Clients: []authtest.Client{{ID: "svc", Secret: "svc-secret-81c2"}, {ID: "cli"}},
		Users:   []authtest.User{{Username: "ada"}},
	})
	defer prov.Close()
	prov.AutoApprove("ada", 0)
	plat, err := platform.New(platform.Config{Provider: prov,
		APIKeys: []platform.APIKey{{ID: "key-1", Secret: "ak-secret-3f0e", Username: "ci-bot"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer plat.Close()
	base := map[string]string{"PLATFORM_ISSUER": prov.Issuer(), "PLATFORM_HUB": plat.HubURL(),
		"PLATFORM_ACCESS_MANAGER": plat.AccessManagerURL(), "PLATFORM_MESSAGES": plat.MessageServiceAddr()}
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"API keys", map[string]string{"PLATFORM_API_KEY_ID": "key-1", "PLATFORM_API_KEY": "ak-secret-3f0e", "PLATFORM_API_KEY_USER": "ci-bot"},
			[]string{"credentials: API keys (environment)", "hub: ci-bot, access manager: ci-bot, message service: ci-bot"}},
		{"client credentials", map[string]string{"PLATFORM_CLIENT_ID": "svc", "PLATFORM_CLIENT_SECRET": "svc-secret-81c2"},
			[]string{"credentials: client credentials (environment)", "hub: service-account-svc, access manager: service-account-svc"}},
		{"device code", map[string]string{"PLATFORM_CLI_CLIENT_ID": "cli"},
			[]string{"credentials: interactive login", "hub: ada, access manager: ada, message service: ada"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range base {
				env[k] = v
			}
			for k, v := range tt.env {
				env[k] = v
			}
			var out bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := run(ctx, &out, func(k string) string { return env[k] }); err != nil {
				t.Fatalf("run: %v\n%s", err, out.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
	var out bytes.Buffer
	if err := run(context.Background(), &out, func(k string) string { return base[k] }); err == nil ||
		!strings.Contains(err.Error(), "PLATFORM_API_KEY_ID and PLATFORM_API_KEY are not set") {
		t.Errorf("nothing configured: %v", err)
	}
}
