package grpcauth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/authtest"
)

// watchedService is a service name the health server knows, so that a
// Watch answering SERVING proves the request message reached the server.
const watchedService = "authkit.test.Messages"

// tokens is a counting FetchFunc: fetch n returns "tok-n", valid for an
// hour of the fake clock. With block set, a fetch waits for release (or
// the engine's ctx) first.
type tokens struct {
	clk     *authtest.Clock
	n       atomic.Int64
	block   bool
	release chan struct{}
	err     error
}

func newTokens(clk *authtest.Clock) *tokens {
	return &tokens{clk: clk, release: make(chan struct{})}
}

func (s *tokens) fetch(ctx context.Context, _ *auth.Token) (*auth.Token, error) {
	n := s.n.Add(1)
	if s.block {
		select {
		case <-s.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if s.err != nil {
		return nil, s.err
	}
	return &auth.Token{AccessToken: auth.NewSecret(fmt.Sprintf("tok-%d", n)), TokenType: "Bearer", Expiry: s.clk.Now().Add(time.Hour)}, nil
}

// newEngine returns an engine over src, closed when the test ends.
func newEngine(t *testing.T, src *tokens, wire auth.Wire) *auth.Engine {
	t.Helper()
	e, err := auth.NewEngine(auth.EngineConfig{Fetch: src.fetch, Clock: src.clk, Wire: wire})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		select {
		case <-src.release:
		default:
			close(src.release)
		}
		e.Close()
	})
	return e
}

// recorder is a server interceptor that records the credential each call
// carried under key, and answers Unauthenticated to the values reject
// names.
type recorder struct {
	key    string
	reject func(value string) bool
	echo   bool // the rejection's message repeats the credential, as some servers do

	mu   sync.Mutex // guards seen
	seen []string
}

func (r *recorder) check(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	v := ""
	if vals := md.Get(r.key); len(vals) > 0 {
		v = vals[0]
	}
	r.mu.Lock()
	r.seen = append(r.seen, v)
	r.mu.Unlock()
	if r.reject != nil && r.reject(v) {
		if r.echo {
			return status.Errorf(codes.Unauthenticated, "test: credential %q rejected", v)
		}
		return status.Error(codes.Unauthenticated, "test: credential rejected")
	}
	return nil
}

func (r *recorder) values() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen)
}

func (r *recorder) options() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := r.check(ctx); err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if err := r.check(ss.Context()); err != nil {
				return err
			}
			return h(srv, ss)
		}),
	}
}

// serveHealth serves the standard health service on lis until the test
// ends.
func serveHealth(t *testing.T, lis net.Listener, opts ...grpc.ServerOption) {
	t.Helper()
	serve(t, lis, nil, opts...)
}

// serve serves the health service, and those register adds, on lis until
// the test ends.
func serve(t *testing.T, lis net.Listener, register func(*grpc.Server), opts ...grpc.ServerOption) {
	t.Helper()
	srv := grpc.NewServer(opts...)
	if register != nil {
		register(srv)
	}
	hs := health.NewServer()
	hs.SetServingStatus(watchedService, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
}

// bufServer serves the health service in memory and returns a dialer to it.
func bufServer(t *testing.T, opts ...grpc.ServerOption) grpc.DialOption {
	t.Helper()
	return bufServerWith(t, nil, opts...)
}

// bufServerWith is bufServer with the services register adds.
func bufServerWith(t *testing.T, register func(*grpc.Server), opts ...grpc.ServerOption) grpc.DialOption {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	serve(t, lis, register, opts...)
	return grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
		return lis.DialContext(ctx)
	})
}

// remoteServer serves on an in-memory listener whose connections report
// the peer address remote, as a connection to another host would: the test
// of a rule that judges the address actually dialled. Nothing leaves the
// process.
func remoteServer(t *testing.T, remote string, opts ...grpc.ServerOption) grpc.DialOption {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	serve(t, lis, nil, opts...)
	addr, err := net.ResolveTCPAddr("tcp", remote)
	if err != nil {
		t.Fatal(err)
	}
	return grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
		c, err := lis.DialContext(ctx)
		if err != nil {
			return nil, err
		}
		return remoteConn{Conn: c, remote: addr}, nil
	})
}

// remoteConn is a connection that reports another remote address.
type remoteConn struct {
	net.Conn
	remote net.Addr
}

func (c remoteConn) RemoteAddr() net.Addr { return c.remote }

// dial makes a health client and closes it when the test ends.
func dial(t *testing.T, target string, opts ...grpc.DialOption) healthpb.HealthClient {
	t.Helper()
	return healthpb.NewHealthClient(dialConn(t, target, opts...))
}

// dialConn makes a channel and closes it when the test ends.
func dialConn(t *testing.T, target string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// testCert makes a self-signed server certificate for the given names and
// a pool that trusts it.
func testCert(t *testing.T, names ...string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "authkit test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// tlsServer serves the health service over TLS on a loopback TCP port.
func tlsServer(t *testing.T, opts ...grpc.ServerOption) (addr string, roots *x509.CertPool) {
	t.Helper()
	cert, pool := testCert(t, "127.0.0.1", "localhost")
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opts = append(opts, grpc.Creds(credentials.NewServerTLSFromCert(&cert)))
	serveHealth(t, lis, opts...)
	return lis.Addr().String(), pool
}

// watchOnce opens a Watch of watchedService and returns the first status.
func watchOnce(ctx context.Context, c healthpb.HealthClient) (healthpb.HealthCheckResponse_ServingStatus, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := c.Watch(ctx, &healthpb.HealthCheckRequest{Service: watchedService})
	if err != nil {
		return 0, err
	}
	resp, err := w.Recv()
	if err != nil {
		return 0, err
	}
	return resp.GetStatus(), nil
}
