package platform

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/authkit-go/authkit/grpcauth"
)

// MessagesServiceName is the gRPC service of a [Platform]'s message service
// beside the health service. Its one method, WhoAmI
// (google.protobuf.Empty → google.protobuf.Struct), answers the caller as a
// [Me]; call it with [WhoAmI].
const MessagesServiceName = "authtest.platform.v1.Messages"

// MethodWhoAmI is the full name of the WhoAmI method, as gRPC interceptors
// see it.
const MethodWhoAmI = "/" + MessagesServiceName + "/WhoAmI"

// messagesServer is the implementation behind MessagesServiceName.
type messagesServer interface {
	whoAmI(ctx context.Context) (*structpb.Struct, error)
}

type messages struct{}

func (messages) whoAmI(ctx context.Context) (*structpb.Struct, error) {
	id, ok := grpcauth.IdentityFromContext(ctx)
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "platform: no identity")
	}
	m := meOf(ServiceMessages, id)
	return structpb.NewStruct(map[string]any{
		"service":   m.Service,
		"subject":   m.Subject,
		"username":  m.Username,
		"method":    m.Method,
		"client_id": m.ClientID,
	})
}

var messagesDesc = grpc.ServiceDesc{
	ServiceName: MessagesServiceName,
	HandlerType: (*messagesServer)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "WhoAmI",
		Handler: func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
			in := new(emptypb.Empty)
			if err := dec(in); err != nil {
				return nil, err
			}
			h := func(ctx context.Context, _ any) (any, error) { return srv.(messagesServer).whoAmI(ctx) }
			if ic == nil {
				return h(ctx, in)
			}
			return ic(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: MethodWhoAmI}, h)
		},
	}},
}

func registerMessageService(s *grpc.Server) {
	hs := health.NewServer()
	hs.SetServingStatus(MessagesServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(s, hs)
	s.RegisterService(&messagesDesc, messages{})
}

// WhoAmI calls the message service's WhoAmI method over cc (a channel to
// [Platform.MessageServiceAddr]) and returns the caller as the service saw
// it.
func WhoAmI(ctx context.Context, cc grpc.ClientConnInterface, opts ...grpc.CallOption) (Me, error) {
	out := new(structpb.Struct)
	if err := cc.Invoke(ctx, MethodWhoAmI, new(emptypb.Empty), out, opts...); err != nil {
		return Me{}, err
	}
	f := out.GetFields()
	str := func(k string) string { return f[k].GetStringValue() }
	m := Me{Service: str("service"), Subject: str("subject"), Username: str("username"),
		Method: str("method"), ClientID: str("client_id")}
	if m.Service == "" {
		return Me{}, fmt.Errorf("platform: WhoAmI answered no service: %v", out)
	}
	return m, nil
}
