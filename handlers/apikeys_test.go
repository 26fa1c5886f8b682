package handlers_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/handlers"
)

const testAPIKey = "sk-live-0123456789abcdef" // the secret that must never be printed

func validAPIKeysConfig() handlers.APIKeysConfig {
	return handlers.APIKeysConfig{KeyID: "key-42", Key: auth.NewSecret(testAPIKey), Username: "alice"}
}

func TestAPIKeysConfigErrors(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*handlers.APIKeysConfig)
		want   string // a part of the message
	}{
		{"no key id", func(c *handlers.APIKeysConfig) { c.KeyID = "" }, "KeyID is required"},
		{"no key", func(c *handlers.APIKeysConfig) { c.Key = auth.NewSecret("") }, "Key is required"},
		{"no username", func(c *handlers.APIKeysConfig) { c.Username = "" }, "Username is required"},
		{"CR LF in key id", func(c *handlers.APIKeysConfig) { c.KeyID = "key-42\r\nX-Evil: 1" }, "KeyID must be printable"},
		{"LF in key", func(c *handlers.APIKeysConfig) { c.Key = auth.NewSecret(testAPIKey + "\nX-Evil: 1") }, "Key must be printable"},
		{"CR in key", func(c *handlers.APIKeysConfig) { c.Key = auth.NewSecret(testAPIKey + "\r") }, "Key must be printable"},
		{"space in key", func(c *handlers.APIKeysConfig) { c.Key = auth.NewSecret(testAPIKey + " x") }, "Key must be printable"},
		{"non-ASCII key", func(c *handlers.APIKeysConfig) { c.Key = auth.NewSecret(testAPIKey + "é") }, "Key must be printable"},
		{"LF in username", func(c *handlers.APIKeysConfig) { c.Username = "alice\nbob" }, "Username must not contain"},
		{"invalid header name", func(c *handlers.APIKeysConfig) { c.Wire.APIKeyName = "x api key" }, "not a valid HTTP header name"},
		{"reserved metadata key", func(c *handlers.APIKeysConfig) { c.Wire.APIKeyName = "grpc-key" }, "not a valid gRPC metadata key"},
		{"same names", func(c *handlers.APIKeysConfig) { c.Wire.APIKeyIDName = "X-Api-Key" }, "must differ"},
		{"hub value empty before colon", func(c *handlers.APIKeysConfig) {
			c.HubValuesBeforeColon = true
			c.Key = auth.NewSecret(":" + testAPIKey)
		}, "must not start with ':'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := validAPIKeysConfig()
			tt.modify(&cfg)
			h, err := handlers.NewAPIKeys(cfg)
			if !errors.Is(err, auth.ErrInvalidConfig) {
				t.Fatalf("NewAPIKeys() = %v, %v; want an error wrapping auth.ErrInvalidConfig", h, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			if strings.Contains(err.Error(), testAPIKey) {
				t.Errorf("error %q shows the key", err)
			}
		})
	}
}

func TestAPIKeysWire(t *testing.T) {
	tests := []struct {
		name    string
		cfg     handlers.APIKeysConfig
		wantHub http.Header
		wantAM  http.Header
		wantMS  map[string]string
	}{
		{
			name:    "defaults",
			cfg:     handlers.APIKeysConfig{KeyID: "key-42", Key: auth.NewSecret("secret:part"), Username: "alice"},
			wantHub: http.Header{"X-Api-Key-Id": {"key-42"}, "X-Api-Key": {"secret:part"}},
			wantAM:  http.Header{"X-Api-Key-Id": {"key-42"}, "X-Api-Key": {"secret:part"}},
			wantMS:  map[string]string{"x-api-key-id": "key-42", "x-api-key": "secret:part"},
		},
		{
			name: "custom names, mixed case",
			cfg: handlers.APIKeysConfig{KeyID: "key-42", Key: auth.NewSecret("secret"), Username: "alice",
				Wire: auth.Wire{APIKeyIDName: "X-Client-ID", APIKeyName: "X-Client-SECRET"}},
			wantHub: http.Header{"X-Client-Id": {"key-42"}, "X-Client-Secret": {"secret"}},
			wantAM:  http.Header{"X-Client-Id": {"key-42"}, "X-Client-Secret": {"secret"}},
			wantMS:  map[string]string{"x-client-id": "key-42", "x-client-secret": "secret"},
		},
		{
			name: "hub values before colon",
			cfg: handlers.APIKeysConfig{KeyID: "tenant:key-42", Key: auth.NewSecret("pub:secret:more"), Username: "alice",
				HubValuesBeforeColon: true},
			wantHub: http.Header{"X-Api-Key-Id": {"tenant"}, "X-Api-Key": {"pub"}},
			wantAM:  http.Header{"X-Api-Key-Id": {"tenant:key-42"}, "X-Api-Key": {"pub:secret:more"}},
			wantMS:  map[string]string{"x-api-key-id": "tenant:key-42", "x-api-key": "pub:secret:more"},
		},
		{
			name: "hub values before colon, no colon",
			cfg: handlers.APIKeysConfig{KeyID: "key-42", Key: auth.NewSecret("secret"), Username: "alice",
				HubValuesBeforeColon: true},
			wantHub: http.Header{"X-Api-Key-Id": {"key-42"}, "X-Api-Key": {"secret"}},
			wantAM:  http.Header{"X-Api-Key-Id": {"key-42"}, "X-Api-Key": {"secret"}},
			wantMS:  map[string]string{"x-api-key-id": "key-42", "x-api-key": "secret"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := handlers.NewAPIKeys(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			hub, err := h.HubRequestHeaders(ctx)
			if err != nil || !reflect.DeepEqual(hub, tt.wantHub) {
				t.Errorf("HubRequestHeaders() = %v, %v; want %v", hub, err, tt.wantHub)
			}
			am, err := h.AccessManagerRequestHeaders(ctx)
			if err != nil || !reflect.DeepEqual(am, tt.wantAM) {
				t.Errorf("AccessManagerRequestHeaders() = %v, %v; want %v", am, err, tt.wantAM)
			}
			ms, err := h.MessageServiceMetadata(ctx)
			if err != nil || !maps.Equal(ms, tt.wantMS) {
				t.Errorf("MessageServiceMetadata() = %v, %v; want %v", ms, err, tt.wantMS)
			}
			// What a server really receives.
			for _, svc := range []struct {
				name string
				hdr  http.Header
			}{{"hub", hub}, {"access manager", am}} {
				got := sendHeaders(t, svc.hdr)
				for k, want := range svc.hdr {
					if !slices.Equal(got[k], want) {
						t.Errorf("%s received %s: %q, want %q", svc.name, k, got[k], want)
					}
				}
			}
		})
	}
}

// sendHeaders sends a request carrying hdr to an httptest server and returns
// the headers the server received.
func sendHeaders(t *testing.T, hdr http.Header) http.Header {
	t.Helper()
	got := make(chan http.Header, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
	}))
	defer srv.Close()
	req, err := http.NewRequest(http.MethodGet, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = slices.Clone(v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return <-got
}

func TestAPIKeysPreparedOnce(t *testing.T) {
	h, err := handlers.NewAPIKeys(validAPIKeysConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := h.Authenticate(ctx); err != nil {
		t.Errorf("Authenticate() = %v", err)
	}
	if !h.Authenticated() {
		t.Error("Authenticated() = false")
	}
	if got := h.Username(); got != "alice" {
		t.Errorf("Username() = %q", got)
	}
	getters := []struct {
		name string
		get  func() (any, error)
	}{
		{"hub", func() (any, error) { return h.HubRequestHeaders(ctx) }},
		{"access manager", func() (any, error) { return h.AccessManagerRequestHeaders(ctx) }},
		{"message service", func() (any, error) { return h.MessageServiceMetadata(ctx) }},
	}
	for _, g := range getters {
		t.Run(g.name, func(t *testing.T) {
			a, _ := g.get()
			b, _ := g.get()
			if reflect.ValueOf(a).UnsafePointer() != reflect.ValueOf(b).UnsafePointer() {
				t.Error("two calls returned different maps; want the one prepared at construction")
			}
			if n := testing.AllocsPerRun(100, func() { _, _ = g.get() }); n != 0 {
				t.Errorf("getter allocates %v times per call, want 0", n)
			}
		})
	}
}

func TestAPIKeysNeverPrintsKey(t *testing.T) {
	cfg := validAPIKeysConfig()
	h, err := handlers.NewAPIKeys(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("configured", "handler", h, "config", cfg, "config_ptr", &cfg)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("configured", "handler", h, "config", cfg)
	outputs := map[string]string{"slog": logs.String()}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		outputs["handler "+verb] = fmt.Sprintf(verb, h)
		outputs["config "+verb] = fmt.Sprintf(verb, cfg)
		outputs["config pointer "+verb] = fmt.Sprintf(verb, &cfg)
	}
	for name, out := range outputs {
		t.Run(name, func(t *testing.T) {
			if strings.Contains(out, testAPIKey) {
				t.Errorf("output shows the key: %s", out)
			}
			if strings.HasPrefix(name, "config") && (!strings.Contains(out, "key-42") || !strings.Contains(out, "redacted")) {
				t.Errorf("output %s should name the key id and say the key is redacted", out)
			}
		})
	}
}

func BenchmarkAPIKeysGetters(b *testing.B) {
	h, err := handlers.NewAPIKeys(validAPIKeysConfig())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.Run("Hub", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = h.HubRequestHeaders(ctx)
		}
	})
	b.Run("AccessManager", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = h.AccessManagerRequestHeaders(ctx)
		}
	})
	b.Run("MessageService", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = h.MessageServiceMetadata(ctx)
		}
	})
	b.Run("Parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_, _ = h.HubRequestHeaders(ctx)
			}
		})
	})
}

func ExampleNewAPIKeys() {
	h, err := handlers.NewAPIKeys(handlers.APIKeysConfig{
		KeyID:    "tenant-7:key-42",
		Key:      auth.NewSecret("pk_7f3a:s3cr3t"),
		Username: "build-bot",
		// The modelled hub wants only what comes before the first ':'.
		HubValuesBeforeColon: true,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	hub, _ := h.HubRequestHeaders(ctx)
	am, _ := h.AccessManagerRequestHeaders(ctx)
	md, _ := h.MessageServiceMetadata(ctx)
	for _, k := range slices.Sorted(maps.Keys(hub)) {
		fmt.Printf("hub            %s: %s\n", k, hub.Get(k))
	}
	for _, k := range slices.Sorted(maps.Keys(am)) {
		fmt.Printf("access manager %s: %s\n", k, am.Get(k))
	}
	for _, k := range slices.Sorted(maps.Keys(md)) {
		fmt.Printf("message        %s: %s\n", k, md[k])
	}
	// Output:
	// hub            X-Api-Key: pk_7f3a
	// hub            X-Api-Key-Id: tenant-7
	// access manager X-Api-Key: pk_7f3a:s3cr3t
	// access manager X-Api-Key-Id: tenant-7:key-42
	// message        x-api-key: pk_7f3a:s3cr3t
	// message        x-api-key-id: tenant-7:key-42
}
