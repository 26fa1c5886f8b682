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
// into a cache with proactive refresh. Its state is one immutable value behind
// an atomic pointer: while a token is valid, a getter is that load plus a
// comparison with a shared coarse wall clock — no lock, no allocation, no
// system call — so a machine that slept past the expiry never sends the dead
// token. The first read past the refresh time starts one background refresh
// and keeps getting the still valid token. Callers that hold no valid token
// share one fetch, each waiting only as long as its own ctx allows; transient
// failures are retried within that fetch. Every change of state (a fetched
// token, a login, a logout, Close) goes through one path that checks a login
// epoch, so a fetch that started before a logout can neither install nor save
// its token. Time comes from the engine's [Clock], so tests move a fake clock
// instead of sleeping.
//
// # Sender-constrained tokens
//
// A token obtained with a DPoP proof (RFC 9449) carries its [DPoPKey]
// ([Token.DPoPKey]); a DPoP-bound one (token type DPoP) is sent as
// "Authorization: DPoP <token>" with a new proof for every request, which
// the getters cannot give: handlers implement [RequestAuthenticator], and
// the session and grpcauth call it. The stores keep the key with the token.
//
// # Telemetry
//
// An engine reports its slow paths — fetches and their attempts, waits,
// store operations, revocations — to its [EngineConfig.Observer]; package
// auth/otelauth (a module of its own) makes an [Observer] that reports
// them to OpenTelemetry as spans and metrics. Package auth imports no
// telemetry library. A read served from the cache calls no Observer; one
// that is a [ReadObserver] has each engine count those reads (one atomic
// add each).
package auth
