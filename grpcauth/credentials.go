package grpcauth

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/netip"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/authkit-go/authkit/auth"
)

// MetadataSource produces the gRPC metadata of the message service. Every
// [auth.AuthenticationHandler] is one, and so is an [auth.Engine].
//
// The returned map is shared and read-only (see auth.AuthenticationHandler).
type MetadataSource interface {
	// MessageServiceMetadata returns valid metadata, refreshing it if
	// needed, and waits no longer than ctx allows.
	MessageServiceMetadata(ctx context.Context) (map[string]string, error)
}

// ClientConfig configures [Credentials]. The zero value is the safe default:
// TLS required, standard metadata names, one retry after Unauthenticated.
type ClientConfig struct {
	// Wire names the metadata entry that carries the credential, which the
	// interceptors read to tell the handler which credential the server
	// refused; zero means "authorization". It matters only for a handler
	// whose metadata has several entries: a single entry is the credential,
	// whatever its name, so the handler's own wire settings need not be
	// repeated here.
	Wire auth.Wire
	// UserAgent is the channel's user agent, set by DialOptions (gRPC
	// appends its own "grpc-go/<version>"); empty means
	// auth.DefaultUserAgent.
	UserAgent string
	// Logger receives an info record each time the server rejects the
	// credentials and the call is retried with new ones (the method and
	// the server's message without the credentials sent, which a server
	// may echo: TestConcurrentRejectionsFetchOnce); nil means silent.
	Logger *slog.Logger
	// AllowInsecureLoopback lets credentials travel over a channel without
	// transport security, but only to a peer on this machine: a loopback
	// address (127.0.0.0/8, ::1) or a Unix socket, judged on the address the
	// connection actually reached, not on the channel's authority (which
	// grpc.WithAuthority can set to anything). For local development.
	// Without TransportCredentials it also makes DialOptions use a
	// plaintext channel.
	AllowInsecureLoopback bool
	// DisableRetry turns the interceptors into pass-throughs: an
	// Unauthenticated answer reaches the caller at once.
	DisableRetry bool
	// MaxReplay bounds how many sent messages a client stream keeps so
	// that it can re-open after Unauthenticated; a stream that sent more
	// before its first answer is not re-opened. Zero means 16.
	MaxReplay int
	// TransportCredentials secure the channel made with
	// [Credentials.DialOptions]. Nil means TLS 1.2 or later with the
	// system's roots, or plaintext with AllowInsecureLoopback.
	TransportCredentials credentials.TransportCredentials
}

// Credentials authenticates the RPCs of a channel with the metadata of a
// handler. It implements [credentials.PerRPCCredentials] and provides the
// client interceptors Unary and Stream. It is safe for concurrent use.
type Credentials struct {
	src       MetadataSource
	inv       auth.Invalidator          // src as an Invalidator, or nil
	ra        auth.RequestAuthenticator // src as one, or nil: proofs per RPC
	key       string                    // metadata key that carries the credential
	insecure  bool                      // AllowInsecureLoopback
	retry     bool
	maxReplay int
	log       *slog.Logger
	ua        string
	transport credentials.TransportCredentials
}

// NewCredentials returns the per-RPC credentials of src. The interceptors
// retry only if src also implements [auth.Invalidator] (as auth.Engine and
// the token handlers do).
func NewCredentials(src MetadataSource, cfg ClientConfig) (*Credentials, error) {
	if src == nil {
		return nil, auth.ConfigError("grpcauth: a MetadataSource (handler) is required")
	}
	if err := cfg.Wire.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxReplay < 0 {
		return nil, auth.ConfigError("grpcauth: MaxReplay must not be negative, got %d", cfg.MaxReplay)
	}
	ua, err := auth.CheckUserAgent(cfg.UserAgent)
	if err != nil {
		return nil, err
	}
	c := &Credentials{
		ua:        ua,
		src:       src,
		key:       cfg.Wire.WithDefaults().MessageService.Name,
		insecure:  cfg.AllowInsecureLoopback,
		retry:     !cfg.DisableRetry,
		maxReplay: cfg.MaxReplay,
		transport: cfg.TransportCredentials,
		log:       cfg.Logger,
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.maxReplay == 0 {
		c.maxReplay = 16
	}
	c.inv, _ = src.(auth.Invalidator)
	c.ra, _ = src.(auth.RequestAuthenticator)
	switch {
	case c.transport != nil:
	case c.insecure:
		c.transport = insecure.NewCredentials()
	default:
		c.transport = credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12})
	}
	return c, nil
}

// DialOptions returns NewCredentials(src, cfg).DialOptions().
func DialOptions(src MetadataSource, cfg ClientConfig) ([]grpc.DialOption, error) {
	c, err := NewCredentials(src, cfg)
	if err != nil {
		return nil, err
	}
	return c.DialOptions(), nil
}

// DialOptions returns the options that make a channel authenticate every
// RPC with c: the user agent and transport credentials of the config, c as
// per-RPC credentials, and c's unary and stream interceptors.
func (c *Credentials) DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithUserAgent(c.ua),
		grpc.WithTransportCredentials(c.transport),
		grpc.WithPerRPCCredentials(c),
		grpc.WithChainUnaryInterceptor(c.Unary),
		grpc.WithChainStreamInterceptor(c.Stream),
	}
}

// GetRequestMetadata returns the handler's metadata for one RPC. ctx is the
// RPC's: its deadline and cancellation bound a refresh the handler may have
// to make, and end the RPC with codes.DeadlineExceeded or codes.Canceled.
// Other failures of the handler end it with codes.Unauthenticated and the
// handler's message (which never carries a secret).
//
// The channel's security is checked here on every call, as grpc's own
// oauth credentials do: it must give privacy and integrity (TLS) or, with
// ClientConfig.AllowInsecureLoopback, reach a peer on this machine. Called
// outside a gRPC call (no credentials.RequestInfo in ctx) it refuses: the
// channel is unknown. Callers outside gRPC that know their channel is
// secure say so with credentials.NewContextWithRequestInfo.
//
// The map returned is the handler's shared, read-only map: gRPC only reads
// it (it copies the entries into the request headers), so no copy is made
// and a valid credential costs no allocation. Callers outside gRPC must not
// modify it either.
//
// A handler with DPoP-bound tokens (an [auth.RequestAuthenticator]) adds
// a "dpop" entry, a new proof of a POST to
// https://<authority>/<service>/<method> ([auth.RPCTargetURI]), beside
// "authorization: DPoP <token>".
func (c *Credentials) GetRequestMetadata(ctx context.Context, uri ...string) (map[string]string, error) {
	method, err := c.checkTransport(ctx)
	if err != nil {
		return nil, err
	}
	var md map[string]string
	if c.ra != nil && len(uri) > 0 {
		md, err = c.ra.RequestMetadata(ctx, uri[0], method, "")
	} else {
		md, err = c.src.MessageServiceMetadata(ctx)
	}
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, status.Errorf(status.FromContextError(ctxErr).Code(),
				"grpcauth: no credentials before the RPC ended: %v", err)
		}
		return nil, status.Errorf(codes.Unauthenticated, "grpcauth: no credentials for the RPC: %v", err)
	}
	return md, nil
}

// RequireTransportSecurity reports whether gRPC must refuse the credentials
// on an insecure channel: true unless AllowInsecureLoopback is set.
// GetRequestMetadata checks the channel itself either way.
func (c *Credentials) RequireTransportSecurity() bool { return !c.insecure }

// checkTransport refuses to hand out credentials on a channel without
// privacy and integrity, unless the connection's peer is on this machine
// and the caller opted in. It returns the RPC's method.
func (c *Credentials) checkTransport(ctx context.Context) (string, error) {
	ri, ok := credentials.RequestInfoFromContext(ctx)
	if !ok {
		return "", status.Error(codes.Unauthenticated,
			"grpcauth: GetRequestMetadata called outside a gRPC call: the channel's security is unknown, so no credentials are sent")
	}
	if credentials.CheckSecurityLevel(ri.AuthInfo, credentials.PrivacyAndIntegrity) == nil {
		return ri.Method, nil
	}
	addr := "an unknown peer"
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		addr = p.Addr.String()
		if c.insecure && localPeer(p.Addr) {
			return ri.Method, nil
		}
	}
	if c.insecure {
		return "", status.Errorf(codes.Unauthenticated,
			"grpcauth: refusing to send credentials to %s over an insecure channel: AllowInsecureLoopback admits peers on this machine only (127.0.0.0/8, ::1, Unix sockets); use TLS (grpc.WithTransportCredentials) for other hosts", addr)
	}
	return "", status.Errorf(codes.Unauthenticated,
		"grpcauth: refusing to send credentials to %s over an insecure channel: use TLS (grpc.WithTransportCredentials), or for local development dial a loopback address with ClientConfig.AllowInsecureLoopback", addr)
}

// localPeer reports whether a connection's remote address is on this
// machine: a loopback IP, a Unix socket, or an in-process pipe.
func localPeer(a net.Addr) bool {
	switch a.Network() {
	case "unix", "unixpacket", "pipe", "bufconn":
		return true
	}
	ap, err := netip.ParseAddrPort(a.String())
	return err == nil && ap.Addr().Unmap().IsLoopback()
}
