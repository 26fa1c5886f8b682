// Package grpcauth authenticates gRPC calls with an authkit handler, and
// checks them on the server side.
//
// On the client, [Credentials] is a [credentials.PerRPCCredentials] that
// reads the handler's message-service metadata with each RPC's own context,
// so the RPC's deadline and cancellation bound any refresh. Its Unary and
// Stream methods are client interceptors: after a codes.Unauthenticated
// answer they invalidate the rejected credential and try once more with a
// fresh one. [DialOptions] wires both into a channel:
//
//	opts, err := grpcauth.DialOptions(handler, grpcauth.ClientConfig{})
//	conn, err := grpc.NewClient("messages.example.com:443", opts...)
//
// On the server, [ServerInterceptors] run a [Validator] — a [JWTValidator]
// (keys from a JWKS URL or given keys), an [APIKeyValidator], or a
// [ValidatorList] of both — put the caller's [Identity] in the context
// ([IdentityFromContext]) and ask an optional policy hook whether the
// caller may call the method.
//
// DPoP (RFC 9449): with a handler whose token is DPoP-bound, the
// credentials send "authorization: DPoP <token>" and "dpop", a new proof
// of a POST to https://<authority>/<service>/<method>
// ([auth.RPCTargetURI]); a [JWTValidator] accepts a token bound to a key
// (cnf.jkt) only that way, with a proof of that key for this call, its
// hash, recent and not seen before by this validator
// (TestJWTValidatorDPoP); JWTConfig.DPoPAuthorities pins the authorities
// a proof may name. There is no gRPC convention for server nonces: proofs
// carry none.
//
// Both sides name the metadata as the core's [auth.Wire] says: by default
// "authorization: Bearer <token>", and for example "token: <token>" with
// Wire{MessageService: auth.Field{Name: "token"}}.
package grpcauth
