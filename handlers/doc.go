// Package handlers holds the concrete ways of logging in to the platform:
// one handler per way, each an [auth.AuthenticationHandler] that produces the
// headers of the hub and the access manager and the gRPC metadata of the
// message service.
//
//   - [APIKeys] sends a fixed key id and key; nothing expires, nothing is fetched.
//   - [ExternallyManagedJWT] serves a JWT that the application obtains itself
//     (it owns the login) and hands in through a callback.
//   - The OAuth 2.0 grants (device code, browser login with the
//     authorization code grant and PKCE, client credentials, password with
//     an optional TOTP code, refresh token) and the OIDC discovery helpers
//     live beside them, one file each.
//   - Workload identity, with no secret: [TokenExchange] (RFC 8693) and
//     [JWTBearer] (RFC 7523 §2.1); private_key_jwt client authentication
//     for every OAuth handler ([OAuthConfig.ClientAssertion],
//     [NewPrivateKeyJWT]); and the platform tokens a workload holds —
//     [FederatedTokenFile], [GitHubActionsToken], [CommandToken] — read
//     anew for every exchange. [Select] finds them in the environment.
//   - Sender-constrained tokens for every OAuth handler ([OAuthConfig.DPoP]):
//     tokens bound to a key the handler holds (RFC 9449), sent with a new
//     proof per request through [auth.RequestAuthenticator].
//
// Handlers that manage an expiring token run an [auth.Engine], which supplies
// HubRequestHeaders, AccessManagerRequestHeaders, MessageServiceMetadata,
// RequestHeaders, RequestMetadata, Invalidate, Close and Stats: the token is cached, refreshed in the
// background before it expires, fetched once at a time however many callers
// ask, and a valid token is one atomic load away. Close such handlers when
// no longer needed: Close ends their background work and saves what a
// refresh in flight obtains.
//
// Every handler is safe for concurrent use and never prints a secret: every
// secret in a handler and its configuration is an [auth.Secret], which
// prints as "[redacted]" however it is printed, logged or encoded; a
// [PrivateKeyJWT] prints its algorithm and key id, never the key. The
// header maps and metadata returned by the getters are shared and
// read-only.
//
// Handlers know nothing about sessions or gRPC; package session and package
// grpcauth consume them.
package handlers
