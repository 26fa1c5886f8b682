package platform_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/authtest"
	"github.com/authkit-go/authkit/authtest/platform"
)

// platformFixture is a provider and a platform that trusts it, on a fake clock.
type platformFixture struct {
	clock *authtest.Clock
	prov  *authtest.Provider
	plat  *platform.Platform
}

func newPlatformFixture(t *testing.T, cfg platform.Config) *platformFixture {
	t.Helper()
	clock := authtest.NewClock(time.Time{})
	prov := authtest.NewProvider(authtest.ProviderConfig{
		Clock:    clock,
		Audience: platform.DefaultAudience,
		TLS:      cfg.TLS,
		Users:    []authtest.User{{Username: "ada", Password: "pw"}},
	})
	t.Cleanup(prov.Close)
	cfg.Provider = prov
	cfg.APIKeys = append(cfg.APIKeys, platform.APIKey{ID: "k1", Secret: "s3cret", Username: "bob", Permissions: []string{"projects:read"}})
	plat, err := platform.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(plat.Close)
	return &platformFixture{clock: clock, prov: prov, plat: plat}
}

// get calls an HTTP service with the headers and decodes a 200 answer into out.
func get(t *testing.T, client *http.Client, url string, hdr http.Header, out any) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = hdr
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK && out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
	return resp
}

func dial(t *testing.T, pl *platform.Platform, creds credentials.TransportCredentials) *grpc.ClientConn {
	t.Helper()
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	cc, err := grpc.NewClient(pl.MessageServiceAddr(), grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

func apiKey(id, secret string) http.Header {
	return http.Header{"X-Api-Key-Id": {id}, "X-Api-Key": {secret}}
}

// withMD puts hdr into ctx as outgoing gRPC metadata (lower-case keys).
func withMD(ctx context.Context, hdr http.Header) context.Context {
	md := metadata.MD{}
	for k, v := range hdr {
		md[strings.ToLower(k)] = v
	}
	return metadata.NewOutgoingContext(ctx, md)
}

func TestPlatformAcceptsProviderJWTAndAPIKeys(t *testing.T) {
	f := newPlatformFixture(t, platform.Config{})
	jwt := f.prov.IssueAccessToken("ada", "cli", []string{"projects:read", "messages:send"}, 0)
	cc := dial(t, f.plat, nil)
	client := f.plat.Client()

	tests := []struct {
		name        string
		hdr         http.Header
		subject     string
		username    string
		method      string
		clientID    string
		permissions []string
	}{
		{"jwt", bearer(jwt), "ada", "ada", platform.MethodJWT, "cli", []string{"projects:read", "messages:send"}},
		{"api key", apiKey("k1", "s3cret"), "k1", "bob", platform.MethodAPIKey, "", []string{"projects:read"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := platform.Me{Subject: tt.subject, Username: tt.username, Method: tt.method, ClientID: tt.clientID}
			for _, svc := range []struct {
				service platform.Service
				url     string
			}{
				{platform.ServiceHub, f.plat.HubURL()},
				{platform.ServiceAccessManager, f.plat.AccessManagerURL()},
			} {
				var me platform.Me
				if resp := get(t, client, svc.url+platform.PathMe, tt.hdr, &me); resp.StatusCode != http.StatusOK {
					t.Fatalf("%s: status %d", svc.service, resp.StatusCode)
				}
				want.Service = string(svc.service)
				if me != want {
					t.Errorf("%s /api/me = %+v, want %+v", svc.service, me, want)
				}
			}
			var projects platform.Projects
			if resp := get(t, client, f.plat.HubURL()+platform.PathProjects, tt.hdr, &projects); resp.StatusCode != http.StatusOK {
				t.Fatalf("projects: status %d", resp.StatusCode)
			}
			if projects.Owner != tt.subject || len(projects.Projects) == 0 {
				t.Errorf("projects = %+v", projects)
			}
			var perms platform.Permissions
			if resp := get(t, client, f.plat.AccessManagerURL()+platform.PathPermissions, tt.hdr, &perms); resp.StatusCode != http.StatusOK {
				t.Fatalf("permissions: status %d", resp.StatusCode)
			}
			if perms.Subject != tt.subject || strings.Join(perms.Permissions, " ") != strings.Join(tt.permissions, " ") {
				t.Errorf("permissions = %+v, want %q", perms, tt.permissions)
			}

			ctx := withMD(context.Background(), tt.hdr)
			me, err := platform.WhoAmI(ctx, cc)
			if err != nil {
				t.Fatal(err)
			}
			want.Service = string(platform.ServiceMessages)
			if me != want {
				t.Errorf("WhoAmI = %+v, want %+v", me, want)
			}
			h, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
			if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Errorf("health = %v, %v", h, err)
			}
		})
	}
	c := f.plat.Counts()
	want := platform.Counts{
		platform.ServiceHub:           {Authenticated: 4},
		platform.ServiceAccessManager: {Authenticated: 4},
		platform.ServiceMessages:      {Authenticated: 4},
	}
	for _, s := range platform.Services {
		if c[s] != want[s] {
			t.Errorf("counts[%s] = %+v, want %+v", s, c[s], want[s])
		}
	}
}

func TestPlatformRejects(t *testing.T) {
	f := newPlatformFixture(t, platform.Config{})
	other := authtest.NewProvider(authtest.ProviderConfig{Clock: f.clock, Audience: platform.DefaultAudience})
	defer other.Close()
	expired := f.prov.IssueAccessToken("ada", "cli", nil, time.Minute)
	f.clock.Advance(time.Minute) // exp == now: expired, with no leeway
	tests := []struct {
		name      string
		hdr       http.Header
		challenge string // WWW-Authenticate
	}{
		{"no credentials", http.Header{}, `Bearer realm="%s"`},
		{"expired", bearer(expired), `Bearer realm="%s", error="invalid_token", error_description="grpcauth: the token is expired or not valid yet; get a new token and retry"`},
		// Signed by a key the platform does not know: refused before "iss" is read.
		{"other issuer", bearer(other.IssueAccessToken("ada", "cli", nil, 0)), `Bearer realm="%s", error="invalid_token", error_description="grpcauth: invalid token"`},
		{"not a jwt", bearer("opaque"), `Bearer realm="%s", error="invalid_token", error_description="grpcauth: the bearer token is not a well-formed JWT"`},
		{"wrong api key secret", apiKey("k1", "wrong"), `Bearer realm="%s", error="invalid_token", error_description="grpcauth: unknown API key or wrong secret"`},
		{"unknown api key", apiKey("nope", "s3cret"), `Bearer realm="%s", error="invalid_token", error_description="grpcauth: unknown API key or wrong secret"`},
	}
	cc := dial(t, f.plat, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, svc := range []struct {
				service platform.Service
				url     string
			}{
				{platform.ServiceHub, f.plat.HubURL() + platform.PathProjects},
				{platform.ServiceAccessManager, f.plat.AccessManagerURL() + platform.PathPermissions},
			} {
				resp := get(t, f.plat.Client(), svc.url, tt.hdr, nil)
				if resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("%s: status %d, want 401", svc.service, resp.StatusCode)
				}
				if got, want := resp.Header.Get("WWW-Authenticate"), fmt.Sprintf(tt.challenge, svc.service); got != want {
					t.Errorf("%s: WWW-Authenticate = %s, want %s", svc.service, got, want)
				}
			}
			_, err := platform.WhoAmI(withMD(context.Background(), tt.hdr), cc)
			if status.Code(err) != codes.Unauthenticated {
				t.Errorf("WhoAmI error = %v, want Unauthenticated", err)
			}
		})
	}
	for _, s := range platform.Services {
		if c := f.plat.Counts()[s]; c.Rejected != len(tests) || c.Authenticated != 0 {
			t.Errorf("counts[%s] = %+v, want %d rejected", s, c, len(tests))
		}
	}
}

func TestPlatformAudience(t *testing.T) {
	f := newPlatformFixture(t, platform.Config{})
	billing, err := platform.New(platform.Config{Provider: f.prov, Audience: "billing"})
	if err != nil {
		t.Fatal(err)
	}
	defer billing.Close()
	tok := f.prov.IssueAccessToken("ada", "cli", nil, 0) // aud: DefaultPlatformAudience
	if resp := get(t, f.plat.Client(), f.plat.HubURL()+platform.PathMe, bearer(tok), nil); resp.StatusCode != http.StatusOK {
		t.Errorf("platform of the token's audience: %d", resp.StatusCode)
	}
	resp := get(t, billing.Client(), billing.HubURL()+platform.PathMe, bearer(tok), nil)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "not issued for this service") {
		t.Errorf("platform of another audience: %d %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}

func TestPlatformFaults(t *testing.T) {
	f := newPlatformFixture(t, platform.Config{})
	hdr := apiKey("k1", "s3cret")
	cc := dial(t, f.plat, nil)
	ctx := withMD(context.Background(), hdr)

	f.plat.RejectNext(platform.ServiceHub, 1)
	f.plat.FailNext(platform.ServiceAccessManager, 1)
	f.plat.RejectNext(platform.ServiceMessages, 1)
	f.plat.FailNext(platform.ServiceMessages, 1)

	if resp := get(t, f.plat.Client(), f.plat.HubURL()+platform.PathMe, hdr, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("hub after RejectNext: %d, want 401", resp.StatusCode)
	}
	if resp := get(t, f.plat.Client(), f.plat.HubURL()+platform.PathMe, hdr, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("hub after the rejection: %d, want 200", resp.StatusCode)
	}
	resp := get(t, f.plat.Client(), f.plat.AccessManagerURL()+platform.PathMe, hdr, nil)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "0" {
		t.Errorf("access manager after FailNext: %d Retry-After %q, want 503 and 0", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if _, err := platform.WhoAmI(ctx, cc); status.Code(err) != codes.Unavailable {
		t.Errorf("first RPC: %v, want Unavailable (failures come before rejections)", err)
	}
	if _, err := platform.WhoAmI(ctx, cc); status.Code(err) != codes.Unauthenticated {
		t.Errorf("second RPC: %v, want Unauthenticated", err)
	}
	if _, err := platform.WhoAmI(ctx, cc); err != nil {
		t.Errorf("third RPC: %v", err)
	}
	want := platform.Counts{
		platform.ServiceHub:           {Authenticated: 1, Rejected: 1},
		platform.ServiceAccessManager: {Failed: 1},
		platform.ServiceMessages:      {Authenticated: 1, Rejected: 1, Failed: 1},
	}
	got := f.plat.Counts()
	for _, s := range platform.Services {
		if got[s] != want[s] {
			t.Errorf("counts[%s] = %+v, want %+v", s, got[s], want[s])
		}
	}
	f.plat.ResetCounts()
	if c := f.plat.Counts()[platform.ServiceHub]; c != (platform.ServiceCounts{}) {
		t.Errorf("after ResetCounts: %+v", c)
	}
}

func TestPlatformAPIKeysAtRuntime(t *testing.T) {
	f := newPlatformFixture(t, platform.Config{})
	url := f.plat.HubURL() + platform.PathMe
	if resp := get(t, f.plat.Client(), url, apiKey("k2", "two"), nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unknown key: %d", resp.StatusCode)
	}
	if err := f.plat.AddAPIKey(platform.APIKey{ID: "k2", Secret: "two"}); err != nil {
		t.Fatal(err)
	}
	var me platform.Me
	if resp := get(t, f.plat.Client(), url, apiKey("k2", "two"), &me); resp.StatusCode != http.StatusOK || me.Subject != "k2" {
		t.Fatalf("added key: %d %+v", resp.StatusCode, me)
	}
	f.plat.RemoveAPIKey("k2")
	if resp := get(t, f.plat.Client(), url, apiKey("k2", "two"), nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("removed key: %d", resp.StatusCode)
	}
	if err := f.plat.AddAPIKey(platform.APIKey{ID: "k3"}); err == nil {
		t.Error("AddAPIKey without a secret: no error")
	}
}

func TestPlatformWire(t *testing.T) {
	f := newPlatformFixture(t, platform.Config{Wire: auth.Wire{
		Hub:            auth.Field{Name: "X-Hub-Token"},
		MessageService: auth.Field{Name: "token"},
	}})
	jwt := f.prov.IssueAccessToken("ada", "cli", nil, 0)
	cc := dial(t, f.plat, nil)
	tests := []struct {
		name string
		url  string
		hdr  http.Header
		want int
	}{
		{"hub custom header", f.plat.HubURL() + platform.PathMe, http.Header{"X-Hub-Token": {jwt}}, http.StatusOK},
		{"hub standard header refused", f.plat.HubURL() + platform.PathMe, bearer(jwt), http.StatusUnauthorized},
		{"access manager standard header", f.plat.AccessManagerURL() + platform.PathMe, bearer(jwt), http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if resp := get(t, f.plat.Client(), tt.url, tt.hdr, nil); resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
	if _, err := platform.WhoAmI(metadata.AppendToOutgoingContext(context.Background(), "token", jwt), cc); err != nil {
		t.Errorf("token metadata: %v", err)
	}
	if _, err := platform.WhoAmI(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+jwt), cc); status.Code(err) != codes.Unauthenticated {
		t.Errorf("authorization metadata: %v, want Unauthenticated", err)
	}
}

func TestPlatformTLS(t *testing.T) {
	f := newPlatformFixture(t, platform.Config{TLS: true})
	if !strings.HasPrefix(f.plat.HubURL(), "https://") || !strings.HasPrefix(f.plat.AccessManagerURL(), "https://") {
		t.Fatalf("URLs %s %s", f.plat.HubURL(), f.plat.AccessManagerURL())
	}
	jwt := f.prov.IssueAccessToken("ada", "cli", nil, 0)
	if resp := get(t, f.plat.Client(), f.plat.HubURL()+platform.PathMe, bearer(jwt), nil); resp.StatusCode != http.StatusOK {
		t.Errorf("hub over TLS: %d", resp.StatusCode)
	}
	cc := dial(t, f.plat, f.plat.MessageServiceTLS())
	if _, err := platform.WhoAmI(withMD(context.Background(), bearer(jwt)), cc); err != nil {
		t.Errorf("message service over TLS: %v", err)
	}
}

func TestPlatformConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  platform.Config
	}{
		{"issuer without JWKS", platform.Config{Issuer: "https://issuer.example"}},
		{"bad wire", platform.Config{Wire: auth.Wire{MessageService: auth.Field{Name: "Token"}}}},
		{"key without secret", platform.Config{APIKeys: []platform.APIKey{{ID: "k"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pl, err := platform.New(tt.cfg)
			if err == nil {
				pl.Close()
				t.Fatal("no error")
			}
		})
	}
}

func TestPlatformClose(t *testing.T) {
	pl, err := platform.New(platform.Config{APIKeys: []platform.APIKey{{ID: "k", Secret: "s"}}})
	if err != nil {
		t.Fatal(err)
	}
	hub := pl.HubURL()
	cc := dial(t, pl, nil)
	ctx := withMD(context.Background(), apiKey("k", "s"))
	if _, err := platform.WhoAmI(ctx, cc); err != nil {
		t.Fatal(err)
	}
	pl.Close()
	pl.Close() // twice is fine
	if _, err := http.Get(hub + platform.PathMe); err == nil {
		t.Error("hub still answers after Close")
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := platform.WhoAmI(ctx, cc); status.Code(err) != codes.Unavailable {
		t.Errorf("message service after Close: %v, want Unavailable", err)
	}
}

// A test starts a provider and a platform that trusts it, then calls the
// platform's three services with a token from the provider.
func ExamplePlatform() {
	prov := authtest.NewProvider(authtest.ProviderConfig{Audience: platform.DefaultAudience})
	defer prov.Close()
	plat, err := platform.New(platform.Config{Provider: prov})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer plat.Close()
	tok := prov.IssueAccessToken("ada", "cli", []string{"projects:read"}, 0)

	req, _ := http.NewRequest(http.MethodGet, plat.HubURL()+platform.PathMe, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := plat.Client().Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	var me platform.Me
	json.NewDecoder(resp.Body).Decode(&me)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, me.Service, me.Subject, me.Method)

	cc, err := grpc.NewClient(plat.MessageServiceAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cc.Close()
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok)
	me, err = platform.WhoAmI(ctx, cc)
	fmt.Println(me.Service, me.Subject, err)
	_, err = platform.WhoAmI(context.Background(), cc)
	fmt.Println(status.Code(err))
	fmt.Printf("%+v\n", plat.Counts()[platform.ServiceMessages])
	// Output:
	// 200 hub ada jwt
	// message service ada <nil>
	// Unauthenticated
	// {Authenticated:1 Rejected:1 Failed:0}
}
