package interop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/authkit-go/authkit/grpcauth"
	"github.com/authkit-go/authkit/session"
)

// revoker is a grpcauth.Validator that validates with v but refuses
// credential values it was told are revoked, as a service would after an
// administrator revoked a session; it counts the calls it let through.
type revoker struct {
	v *grpcauth.JWTValidator

	mu      sync.Mutex // guards revoked, users
	revoked map[string]bool
	users   []string
}

func (r *revoker) revoke(value string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.revoked == nil {
		r.revoked = map[string]bool{}
	}
	r.revoked[value] = true
}

func (r *revoker) Validate(ctx context.Context, md metadata.MD) (*grpcauth.Identity, error) {
	vals := md.Get("authorization")
	r.mu.Lock()
	revoked := len(vals) == 1 && r.revoked[vals[0]]
	r.mu.Unlock()
	if revoked {
		return nil, errors.New("revoked")
	}
	id, err := r.v.Validate(ctx, md)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.users = append(r.users, id.Username)
	r.mu.Unlock()
	return id, nil
}

// TestDexGRPCAndSession: one password handler feeds a gRPC client and an
// HTTP session; a gRPC server and a hub validate the Dex-issued access
// tokens against Dex's JWKS. When both services refuse the current token,
// the client interceptor and the session each cause one refresh at Dex
// between them and carry on with the new token.
func TestDexGRPCAndSession(t *testing.T) {
	iss := dexIssuer(t)
	d := discover(t, iss)
	rec := newRecorder(d.TokenEndpoint)
	h := newDexPassword(t, iss, rec)
	ctx := testContext(t)

	v, err := grpcauth.NewJWTValidator(grpcauth.JWTConfig{
		Issuer:         iss,
		Audience:       dexConfidentialID, // Dex's access tokens are for the client
		JWKSURL:        d.JWKSURI,
		UsernameClaim:  dexUsernameClaim,
		RequiredClaims: []string{"sub", "email"},
	})
	mustf(t, err, "NewJWTValidator")
	t.Cleanup(func() { _ = v.Close() })
	rv := &revoker{v: v}

	// The message service: gRPC health behind the server interceptors.
	si, err := grpcauth.NewServerInterceptors(grpcauth.ServerConfig{Validator: rv})
	mustf(t, err, "NewServerInterceptors")
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	mustf(t, err, "listen")
	srv := grpc.NewServer(si.ServerOptions()...)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	creds, err := grpcauth.NewCredentials(h, grpcauth.ClientConfig{
		AllowInsecureLoopback: true,
		TransportCredentials:  insecure.NewCredentials(),
	})
	mustf(t, err, "NewCredentials")
	cc, err := grpc.NewClient(lis.Addr().String(), creds.DialOptions()...)
	mustf(t, err, "grpc.NewClient")
	t.Cleanup(func() { _ = cc.Close() })
	hc := healthpb.NewHealthClient(cc)

	// The hub: validates the same tokens the same way.
	hub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := rv.Validate(r.Context(), metadata.Pairs("authorization", r.Header.Get("Authorization")))
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			http.Error(w, "invalid token", http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, id.Username)
	}))
	t.Cleanup(hub.Close)
	s, err := session.New(h, session.Config{HubURL: hub.URL + "/api"})
	mustf(t, err, "session.New")
	t.Cleanup(func() { _ = s.Close() })

	whoami := func() string {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, hub.URL+"/api/whoami", nil)
		mustf(t, err, "request")
		resp, err := s.HTTPClient().Do(req)
		mustf(t, err, "GET /api/whoami")
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET /api/whoami: HTTP %d %s", resp.StatusCode, b)
		}
		return string(b)
	}
	check := func() {
		t.Helper()
		r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		mustf(t, err, "Health.Check")
		if r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health = %v", r.GetStatus())
		}
	}

	check()
	if got := whoami(); got != userEmail {
		t.Errorf("hub saw user %q, want %q", got, userEmail)
	}
	if n := rec.count("password"); n != 1 {
		t.Errorf("password grants = %d, want 1: gRPC and session share the handler's token", n)
	}

	// Both services now refuse the current token.
	tok1 := bearer(t, h)
	rv.revoke("Bearer " + tok1)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); check() }()
	go func() {
		defer wg.Done()
		if got := whoami(); got != userEmail {
			t.Errorf("hub saw user %q after the refresh, want %q", got, userEmail)
		}
	}()
	wg.Wait()
	if tok2 := bearer(t, h); tok2 == tok1 {
		t.Errorf("the handler still holds the refused token")
	}
	if n := rec.count("refresh_token"); n != 1 {
		t.Errorf("refresh_token requests = %d, want 1 for both services (%v)", n, rec.exchanges())
	}
	rv.mu.Lock()
	users := strings.Join(rv.users, ",")
	rv.mu.Unlock()
	if strings.Count(users, userEmail) != 4 {
		t.Errorf("validated users = %s, want %s four times", users, userEmail)
	}
}
