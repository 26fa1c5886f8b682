package grpcauth

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/authkit-go/authkit/auth"
)

// Validator checks the credentials of an incoming call.
//
// Validate returns the caller's identity, or an error: an [*Error] (or any
// error) refuses the call with codes.Unauthenticated, a gRPC status error
// (e.g. codes.Unavailable when a key store is down) is passed on as it is.
// It returns an error wrapping [ErrNoCredentials] when the call carries no
// credential of its kind.
type Validator interface {
	// Validate checks the credentials in md, the call's metadata.
	Validate(ctx context.Context, md metadata.MD) (*Identity, error)
}

// ValidatorFunc adapts a function to [Validator].
type ValidatorFunc func(ctx context.Context, md metadata.MD) (*Identity, error)

// Validate calls f.
func (f ValidatorFunc) Validate(ctx context.Context, md metadata.MD) (*Identity, error) {
	return f(ctx, md)
}

// ValidatorList accepts the credentials one of its validators accepts: it
// asks each in order and takes the first answer that is not
// [ErrNoCredentials], so a service can accept JWTs and API keys alike.
type ValidatorList []Validator

// Validate asks the validators in order.
func (l ValidatorList) Validate(ctx context.Context, md metadata.MD) (*Identity, error) {
	var msgs []string
	for _, v := range l {
		id, err := v.Validate(ctx, md)
		if err == nil || !errors.Is(err, ErrNoCredentials) {
			return id, err
		}
		var e *Error
		if errors.As(err, &e) {
			msgs = append(msgs, strings.TrimPrefix(e.Message, "grpcauth: missing credentials: "))
		}
	}
	msg := "grpcauth: missing credentials"
	if len(msgs) > 0 {
		msg += ": " + strings.Join(msgs, ", or ")
	}
	return nil, refuse(ErrNoCredentials, msg, nil)
}

// ServerConfig configures [ServerInterceptors].
type ServerConfig struct {
	// Validator checks each call's credentials. Required.
	Validator Validator
	// Authorize, if set, decides whether the identified caller may call
	// fullMethod ("/package.Service/Method"). An error refuses the call
	// with codes.PermissionDenied and the error's text, unless it is a
	// gRPC status error, which is passed on as it is.
	Authorize func(ctx context.Context, fullMethod string, id *Identity) error
	// Public, if set, names methods served without credentials (e.g. the
	// health service); they run without an Identity.
	Public func(fullMethod string) bool
	// Logger receives a debug record for each refused call, with the
	// detailed reason; nil means silent. Credentials are never logged.
	Logger *slog.Logger
}

// ServerInterceptors authenticate the calls a gRPC server receives. Their
// methods Unary and Stream are server interceptors. They are safe for
// concurrent use.
type ServerInterceptors struct {
	cfg ServerConfig
	log *slog.Logger
}

// NewServerInterceptors validates cfg and returns the interceptors.
func NewServerInterceptors(cfg ServerConfig) (*ServerInterceptors, error) {
	if cfg.Validator == nil {
		return nil, auth.ConfigError("grpcauth: ServerConfig.Validator is required")
	}
	s := &ServerInterceptors{cfg: cfg, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// ServerOptions returns the options that install s on a server.
func (s *ServerInterceptors) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(s.Unary),
		grpc.ChainStreamInterceptor(s.Stream),
	}
}

// Unary is a [grpc.UnaryServerInterceptor]: it authenticates the call and
// runs handler with the caller's Identity in ctx.
func (s *ServerInterceptors) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, err := s.authenticate(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// Stream is a [grpc.StreamServerInterceptor]: it authenticates the stream
// and runs handler with the caller's Identity in the stream's context.
func (s *ServerInterceptors) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, err := s.authenticate(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	return handler(srv, &identityStream{ServerStream: ss, ctx: ctx})
}

func (s *ServerInterceptors) authenticate(ctx context.Context, method string) (context.Context, error) {
	if s.cfg.Public != nil && s.cfg.Public(method) {
		return ctx, nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	id, err := s.cfg.Validator.Validate(ctx, md)
	if err == nil && id == nil {
		err = refuse(ErrInvalidCredentials, "grpcauth: invalid credentials", errors.New("the validator returned no identity"))
	}
	if err != nil {
		s.log.LogAttrs(ctx, slog.LevelDebug, "grpcauth: call refused",
			slog.String("method", method), slog.String("reason", err.Error()))
		if st, ok := status.FromError(err); ok {
			return nil, st.Err()
		}
		msg := "grpcauth: invalid credentials"
		var e *Error
		if errors.As(err, &e) && e.Message != "" {
			msg = e.Message
		}
		return nil, status.Error(codes.Unauthenticated, msg)
	}
	ctx = ContextWithIdentity(ctx, id)
	if s.cfg.Authorize != nil {
		if err := s.cfg.Authorize(ctx, method, id); err != nil {
			s.log.LogAttrs(ctx, slog.LevelDebug, "grpcauth: call denied",
				slog.String("method", method), slog.String("subject", id.Subject), slog.String("reason", err.Error()))
			if st, ok := status.FromError(err); ok {
				return nil, st.Err()
			}
			return nil, status.Error(codes.PermissionDenied, err.Error())
		}
	}
	return ctx, nil
}

// identityStream is a server stream whose context carries the identity.
type identityStream struct {
	grpc.ServerStream
	ctx context.Context
}

// Context returns the stream's context with the caller's identity.
func (s *identityStream) Context() context.Context { return s.ctx }

// credential returns the single value of the metadata entry f names, with
// f's prefix removed (compared without regard to case, as the "Bearer"
// scheme is).
func credential(md metadata.MD, f auth.Field) (string, error) {
	vals := md.Get(f.Name)
	form := f.Name + ": " + f.Prefix + "<token>"
	switch {
	case len(vals) == 0:
		return "", refuse(ErrNoCredentials, "grpcauth: missing credentials: send metadata \""+form+"\"", nil)
	case len(vals) > 1:
		return "", refuse(ErrMalformedCredentials, "grpcauth: send one \""+f.Name+"\" metadata entry, not "+strconv.Itoa(len(vals)), nil)
	}
	v := vals[0]
	if f.Prefix != "" {
		if len(v) < len(f.Prefix) || !strings.EqualFold(v[:len(f.Prefix)], f.Prefix) {
			return "", refuse(ErrMalformedCredentials, "grpcauth: the \""+f.Name+"\" metadata must read \""+form+"\"", nil)
		}
		v = v[len(f.Prefix):]
	}
	v = strings.TrimLeft(v, " ")
	if v == "" {
		return "", refuse(ErrMalformedCredentials, "grpcauth: the \""+f.Name+"\" metadata must read \""+form+"\"", nil)
	}
	return v, nil
}
