// Package auth holds the core of authkit: the [AuthenticationHandler]
// contract that every way of logging in implements, the [Token] type, the
// token lifecycle [Engine] that every OAuth grant reuses, token [Store]s, the
// wire settings that say how credentials are written for each service, and the
// error types.
//
// # The handler contract
//
// A handler authenticates once and then answers three questions cheaply: which
// HTTP headers the hub wants, which headers the access manager wants, and which
// gRPC metadata the message service wants. [Authenticate] may block (it may
// prompt a person or call an identity provider); the getters return valid
// credentials, refreshing silently when a refresh token or a client secret
// allows it, and never prompt unless the handler was configured to.
//
// # The engine
//
// [Engine] turns a fetch function — "get me a token, here is the one I have" —
// into a cache with proactive refresh. While a token is valid, a getter is a
// single atomic load of values prepared once per token: no lock, no clock
// read, no allocation. State changes (refresh due, expired) are driven by
// timers of the engine's [Clock], so tests move time with a fake clock instead
// of sleeping. One fetch runs at a time; callers that hold no valid token share
// it and each waits only as long as its own ctx allows.
package auth
