package grpcauth_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/authtest"
	"github.com/authkit-go/authkit/grpcauth"
)

// insecureLocal is the client setup of most tests: an in-memory channel
// whose authority is "localhost", with the loopback opt-in.
func insecureLocal(t *testing.T, src grpcauth.MetadataSource, cfg grpcauth.ClientConfig, srvOpts ...grpc.ServerOption) healthpb.HealthClient {
	t.Helper()
	return healthpb.NewHealthClient(insecureLocalConn(t, src, cfg, bufServer(t, srvOpts...)))
}

// insecureLocalConn is insecureLocal's channel, to the server server dials.
func insecureLocalConn(t *testing.T, src grpcauth.MetadataSource, cfg grpcauth.ClientConfig, server grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	cfg.AllowInsecureLoopback = true
	cfg.TransportCredentials = insecure.NewCredentials()
	opts, err := grpcauth.DialOptions(src, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return dialConn(t, "passthrough:///localhost", append(opts, server)...)
}

func TestMetadataPerRPC(t *testing.T) {
	tests := []struct {
		name string
		wire auth.Wire
		key  string
		want string
	}{
		{name: "default wire", key: "authorization", want: "Bearer tok-1"},
		{name: "token key", wire: auth.Wire{MessageService: auth.Field{Name: "token"}}, key: "token", want: "tok-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newTokens(authtest.NewClock(time.Time{}))
			eng := newEngine(t, src, tt.wire)
			rec := &recorder{key: tt.key}
			c := insecureLocal(t, eng, grpcauth.ClientConfig{Wire: tt.wire}, rec.options()...)
			for range 3 {
				if _, err := c.Check(t.Context(), &healthpb.HealthCheckRequest{}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := watchOnce(t.Context(), c); err != nil {
				t.Fatal(err)
			}
			if got, want := rec.values(), []string{tt.want, tt.want, tt.want, tt.want}; !slices.Equal(got, want) {
				t.Errorf("server saw %q, want %q", got, want)
			}
			if n := src.n.Load(); n != 1 {
				t.Errorf("%d fetches, want 1", n)
			}
		})
	}
}

func TestExpiryBetweenCallsRefreshesOnce(t *testing.T) {
	clk := authtest.NewClock(time.Time{})
	src := newTokens(clk)
	eng := newEngine(t, src, auth.Wire{})
	rec := &recorder{key: "authorization"}
	c := insecureLocal(t, eng, grpcauth.ClientConfig{}, rec.options()...)

	if _, err := c.Check(t.Context(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(61 * time.Minute) // past the hour tok-1 is valid
	for range 2 {
		if _, err := c.Check(t.Context(), &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := rec.values(), []string{"Bearer tok-1", "Bearer tok-2", "Bearer tok-2"}; !slices.Equal(got, want) {
		t.Errorf("server saw %q, want %q", got, want)
	}
	if n := src.n.Load(); n != 2 {
		t.Errorf("%d fetches, want 2", n)
	}
}

func TestRPCContextBoundsSlowRefresh(t *testing.T) {
	tests := []struct {
		name string
		ctx  func(context.Context) (context.Context, context.CancelFunc)
		want codes.Code
	}{
		{
			name: "deadline",
			ctx: func(ctx context.Context) (context.Context, context.CancelFunc) {
				return context.WithTimeout(ctx, 50*time.Millisecond)
			},
			want: codes.DeadlineExceeded,
		},
		{
			name: "cancellation",
			ctx: func(ctx context.Context) (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(ctx)
				time.AfterFunc(20*time.Millisecond, cancel)
				return ctx, cancel
			},
			want: codes.Canceled,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newTokens(authtest.NewClock(time.Time{}))
			src.block = true // the fetch never ends on its own
			eng := newEngine(t, src, auth.Wire{})
			rec := &recorder{key: "authorization"}
			c := insecureLocal(t, eng, grpcauth.ClientConfig{}, rec.options()...)

			ctx, cancel := tt.ctx(t.Context())
			defer cancel()
			_, err := c.Check(ctx, &healthpb.HealthCheckRequest{})
			if got := status.Code(err); got != tt.want {
				t.Fatalf("code %v (%v), want %v", got, err, tt.want)
			}
			if got := rec.values(); len(got) != 0 {
				t.Errorf("server saw %q, want no call", got)
			}
			if n := src.n.Load(); n != 1 {
				t.Errorf("%d fetches, want 1 (no retry after the deadline)", n)
			}
		})
	}
}

func TestHandlerFailureIsNotRetried(t *testing.T) {
	src := newTokens(authtest.NewClock(time.Time{}))
	src.err = fmt.Errorf("refresh token rejected: %w", auth.ErrLoginRequired)
	eng := newEngine(t, src, auth.Wire{})
	rec := &recorder{key: "authorization"}
	c := insecureLocal(t, eng, grpcauth.ClientConfig{}, rec.options()...)

	_, err := c.Check(t.Context(), &healthpb.HealthCheckRequest{})
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "call Authenticate") {
		t.Fatalf("got %v, want Unauthenticated saying to call Authenticate", err)
	}
	if n := src.n.Load(); n != 1 {
		t.Errorf("%d fetches, want 1", n)
	}
	if got := rec.values(); len(got) != 0 {
		t.Errorf("server saw %q, want no call", got)
	}
}

// staticSource is a handler that cannot be invalidated.
type staticSource map[string]string

func (s staticSource) MessageServiceMetadata(context.Context) (map[string]string, error) {
	return s, nil
}

func TestRetryOnUnauthenticated(t *testing.T) {
	rejectFirst := func(v string) bool { return v == "Bearer tok-1" }
	rejectAll := func(string) bool { return true }
	tests := []struct {
		name      string
		reject    func(string) bool
		cfg       grpcauth.ClientConfig
		static    bool
		wantCode  codes.Code
		wantSeen  []string
		wantFetch int64
	}{
		{name: "rejected once", reject: rejectFirst, wantCode: codes.OK,
			wantSeen: []string{"Bearer tok-1", "Bearer tok-2"}, wantFetch: 2},
		{name: "rejected twice", reject: rejectAll, wantCode: codes.Unauthenticated,
			wantSeen: []string{"Bearer tok-1", "Bearer tok-2"}, wantFetch: 2},
		{name: "retry disabled", reject: rejectFirst, cfg: grpcauth.ClientConfig{DisableRetry: true},
			wantCode: codes.Unauthenticated, wantSeen: []string{"Bearer tok-1"}, wantFetch: 1},
		{name: "not an invalidator", reject: rejectAll, static: true,
			wantCode: codes.Unauthenticated, wantSeen: []string{"Bearer static"}},
	}
	for _, tt := range tests {
		for _, kind := range []string{"unary", "stream"} {
			t.Run(tt.name+"/"+kind, func(t *testing.T) {
				src := newTokens(authtest.NewClock(time.Time{}))
				var ms grpcauth.MetadataSource = newEngine(t, src, auth.Wire{})
				if tt.static {
					ms = staticSource{"authorization": "Bearer static"}
				}
				rec := &recorder{key: "authorization", reject: tt.reject}
				c := insecureLocal(t, ms, tt.cfg, rec.options()...)

				var err error
				if kind == "unary" {
					var resp *healthpb.HealthCheckResponse
					resp, err = c.Check(t.Context(), &healthpb.HealthCheckRequest{Service: watchedService})
					if err == nil && resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
						t.Errorf("status %v, want SERVING", resp.GetStatus())
					}
				} else {
					var st healthpb.HealthCheckResponse_ServingStatus
					st, err = watchOnce(t.Context(), c)
					if err == nil && st != healthpb.HealthCheckResponse_SERVING {
						t.Errorf("status %v, want SERVING (the request was not replayed)", st)
					}
				}
				if got := status.Code(err); got != tt.wantCode {
					t.Errorf("code %v (%v), want %v", got, err, tt.wantCode)
				}
				if got := rec.values(); !slices.Equal(got, tt.wantSeen) {
					t.Errorf("server saw %q, want %q", got, tt.wantSeen)
				}
				if n := src.n.Load(); n != tt.wantFetch {
					t.Errorf("%d fetches, want %d", n, tt.wantFetch)
				}
			})
		}
	}
}

// Concurrent rejections of one token cost one refresh, also when the
// handler sends its token under a name of its own (a platform's "token"
// metadata key) that the client config does not repeat; the retries are
// logged without the token.
func TestConcurrentRejectionsFetchOnce(t *testing.T) {
	for _, tt := range []struct {
		name   string
		wire   auth.Wire
		key    string
		reject string
	}{
		{"standard wire", auth.Wire{}, "authorization", "Bearer tok-1"},
		{"the handler's own wire, not repeated", auth.Wire{MessageService: auth.Field{Name: "token"}}, "token", "tok-1"},
	} {
		t.Run(tt.name, func(t *testing.T) { concurrentRejections(t, tt.wire, tt.key, tt.reject) })
	}
}

func concurrentRejections(t *testing.T, wire auth.Wire, key, reject string) {
	src := newTokens(authtest.NewClock(time.Time{}))
	eng := newEngine(t, src, wire)
	// The server echoes the credential into its message: the log keeps the
	// message without it.
	rec := &recorder{key: key, reject: func(v string) bool { return v == reject }, echo: true}
	var logs authtest.LogBuffer
	c := insecureLocal(t, eng, grpcauth.ClientConfig{Logger: slog.New(slog.NewTextHandler(&logs, nil))}, rec.options()...)
	if _, err := eng.Credentials(t.Context()); err != nil { // tok-1 before the burst
		t.Fatal(err)
	}
	defer func() {
		if l := logs.String(); !strings.Contains(l, "the server rejected the credentials; retrying once") || strings.Contains(l, "tok-1") {
			t.Errorf("log = %q, want the retries without the token", l)
		}
	}()
	const n = 8
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := c.Check(t.Context(), &healthpb.HealthCheckRequest{})
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if got := src.n.Load(); got != 2 {
		t.Errorf("%d fetches, want 2: rejections of the same token share one refresh", got)
	}
}

func TestTransportSecurity(t *testing.T) {
	const server = "msg.example.com"
	tests := []struct {
		name    string
		target  string // "" means a loopback TCP port
		tls     bool
		remote  string // the peer address the connection reports, if not local
		allow   bool
		wantErr string // substring of the dial or RPC error; "" means success
	}{
		{name: "insecure remote refused", target: server, wantErr: "transport level security"},
		{name: "insecure remote refused with opt-in", target: server, remote: "203.0.113.7:443", allow: true, wantErr: "peers on this machine only"},
		{name: "authority localhost, remote peer: refused", target: "localhost", remote: "203.0.113.7:443", allow: true, wantErr: "peers on this machine only"},
		{name: "insecure in-memory peer with opt-in", target: server, allow: true},
		{name: "insecure localhost refused without opt-in", target: "localhost", wantErr: "transport level security"},
		{name: "insecure localhost with opt-in", target: "localhost", allow: true},
		{name: "insecure 127.0.0.1 with opt-in", allow: true},
		{name: "TLS remote", target: server, tls: true},
		{name: "TLS loopback", tls: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newTokens(authtest.NewClock(time.Time{}))
			eng := newEngine(t, src, auth.Wire{})
			rec := &recorder{key: "authorization"}
			cfg := grpcauth.ClientConfig{AllowInsecureLoopback: tt.allow, TransportCredentials: insecure.NewCredentials()}
			var extra []grpc.DialOption
			target := "passthrough:///" + tt.target
			switch {
			case tt.target == "" && tt.tls:
				addr, roots := tlsServer(t, rec.options()...)
				target = addr
				cfg.TransportCredentials = credentials.NewTLS(&tls.Config{RootCAs: roots})
			case tt.target == "":
				lis, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				serveHealth(t, lis, rec.options()...)
				target = lis.Addr().String()
			case tt.remote != "":
				extra = append(extra, remoteServer(t, tt.remote, rec.options()...))
			case tt.tls:
				cert, roots := testCert(t, tt.target)
				extra = append(extra, bufServer(t, append(rec.options(), grpc.Creds(credentials.NewServerTLSFromCert(&cert)))...))
				cfg.TransportCredentials = credentials.NewTLS(&tls.Config{RootCAs: roots})
			default:
				extra = append(extra, bufServer(t, rec.options()...))
			}
			opts, err := grpcauth.DialOptions(eng, cfg)
			if err != nil {
				t.Fatal(err)
			}
			conn, err := grpc.NewClient(target, append(opts, extra...)...)
			if err == nil {
				defer conn.Close()
				_, err = healthpb.NewHealthClient(conn).Check(t.Context(), &healthpb.HealthCheckRequest{})
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got := rec.values(); !slices.Equal(got, []string{"Bearer tok-1"}) {
					t.Errorf("server saw %q", got)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want an error containing %q", err, tt.wantErr)
			}
			if got := rec.values(); len(got) != 0 {
				t.Errorf("server saw %q, want no call", got)
			}
		})
	}
}

// With the insecure-loopback opt-in, the credentials check the channel on
// every call: outside a gRPC call nothing says what the channel is, and
// nothing is handed out. Without it, gRPC enforces transport security
// itself (RequireTransportSecurity), before any call.
// plainAuthInfo is the AuthInfo of a connection without transport security.
type plainAuthInfo struct{ credentials.CommonAuthInfo }

func (plainAuthInfo) AuthType() string { return "insecure" }

func TestGetRequestMetadataOutsideGRPC(t *testing.T) {
	c, err := grpcauth.NewCredentials(staticSource{"authorization": "Bearer x"}, grpcauth.ClientConfig{AllowInsecureLoopback: true})
	if err != nil {
		t.Fatal(err)
	}
	if c.RequireTransportSecurity() {
		t.Error("RequireTransportSecurity() = true with the opt-in")
	}
	md, err := c.GetRequestMetadata(context.Background(), "https://msg.example.com/svc")
	if err == nil || md != nil {
		t.Fatalf("got %v, %v; want a refusal: the channel's security is unknown", md, err)
	}
	secure, err := grpcauth.NewCredentials(staticSource{"authorization": "Bearer x"}, grpcauth.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if !secure.RequireTransportSecurity() {
		t.Error("RequireTransportSecurity() = false without the opt-in")
	}
	// Without the opt-in too, the check runs on every call (as grpc's own
	// oauth credentials do): outside a gRPC call, or handed an insecure
	// connection by a transport that does not enforce
	// RequireTransportSecurity, no credential is given.
	for name, ctx := range map[string]context.Context{
		"outside a call": context.Background(),
		"insecure connection": credentials.NewContextWithRequestInfo(context.Background(), credentials.RequestInfo{
			AuthInfo: plainAuthInfo{credentials.CommonAuthInfo{SecurityLevel: credentials.NoSecurity}}}),
	} {
		if md, err := secure.GetRequestMetadata(ctx, "https://msg.example.com/svc"); err == nil || md != nil || status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s: got %v, %v; want an Unauthenticated refusal", name, md, err)
		}
	}
	tlsCtx := credentials.NewContextWithRequestInfo(context.Background(), credentials.RequestInfo{
		AuthInfo: credentials.TLSInfo{CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}}})
	if md, err := secure.GetRequestMetadata(tlsCtx, "https://msg.example.com/svc"); err != nil || md["authorization"] != "Bearer x" {
		t.Errorf("over TLS: got %v, %v; want the credential", md, err)
	}
}

func TestNewCredentialsConfig(t *testing.T) {
	tests := []struct {
		name string
		src  grpcauth.MetadataSource
		cfg  grpcauth.ClientConfig
	}{
		{name: "no source", cfg: grpcauth.ClientConfig{}},
		{name: "bad metadata key", src: staticSource{}, cfg: grpcauth.ClientConfig{Wire: auth.Wire{MessageService: auth.Field{Name: "Token"}}}},
		{name: "reserved metadata key", src: staticSource{}, cfg: grpcauth.ClientConfig{Wire: auth.Wire{MessageService: auth.Field{Name: "grpc-token"}}}},
		{name: "negative replay", src: staticSource{}, cfg: grpcauth.ClientConfig{MaxReplay: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := grpcauth.NewCredentials(tt.src, tt.cfg)
			if !errors.Is(err, auth.ErrInvalidConfig) {
				t.Fatalf("got %v, want ErrInvalidConfig", err)
			}
		})
	}
}

// The channel names the product: authkit's by default, or the SDK's own;
// gRPC appends its own token.
func TestUserAgent(t *testing.T) {
	for _, tt := range []struct{ set, want string }{{"", auth.DefaultUserAgent + " grpc-go/"}, {"mysdk/1.2", "mysdk/1.2 grpc-go/"}} {
		t.Run(tt.want, func(t *testing.T) {
			rec := &recorder{key: "user-agent", reject: func(string) bool { return false }}
			c := insecureLocal(t, staticSource{"authorization": "Bearer static"}, grpcauth.ClientConfig{UserAgent: tt.set}, rec.options()...)
			if _, err := c.Check(t.Context(), &healthpb.HealthCheckRequest{}); err != nil {
				t.Fatal(err)
			}
			if got := rec.values(); len(got) != 1 || !strings.HasPrefix(got[0], tt.want) {
				t.Errorf("user-agent %q, want it to start with %q", got, tt.want)
			}
		})
	}
}
