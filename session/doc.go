// Package session is the shared retrying HTTP session of authkit: one
// [auth.AuthenticationHandler], many services. Every request that goes
// through a [Session] gets exactly the credentials of the service it is
// addressed to (the hub or the access manager) and nothing else.
//
// # Which service
//
// A request is addressed to the hub when its scheme, host and port equal
// those of [Config.HubURL] exactly and its path lies under the hub URL's path;
// likewise for the access manager. Every other request — a lookalike host such
// as hub.example.com.evil.test, another port, another scheme, a path outside
// the base path — is sent without credentials. The decision is made again
// for every hop of a redirect chain, so a redirect to another origin arrives
// there without credentials, while a redirect within the origin keeps them.
// Credentials are never sent over plain http:// to a host that is not a
// loopback address unless [Config.DangerousAllowInsecureHTTP] says so.
//
// # Retries
//
// Requests run on one github.com/hashicorp/go-retryablehttp client, for
// [Session.Do] and [Session.HTTPClient] alike. Network errors, attempts
// that exceed [Config.AttemptTimeout] and the statuses 408, 429, 500, 502,
// 503 and 504 are retried (see [DefaultRetryPolicy]) with exponential
// backoff and jitter, honouring Retry-After up to [Config.RetryWaitMax]
// (see [DefaultBackoff]); a retry repeats the whole redirect chain
// (TestRetryRepeatsTheRedirectChain). Only
// idempotent requests (GET, HEAD, OPTIONS, PUT, DELETE) and requests marked
// with [Retryable] or an Idempotency-Key header are retried, and only when
// their body can be rewound (http.Request.GetBody). Credentials are obtained
// again for every attempt. A retryable failure on the last allowed attempt
// becomes a [*StatusError] carrying the status and a short, redacted excerpt
// of the body.
//
// # 401
//
// When a service answers 401 to a request that carried credentials, the
// session tells the handler (via [auth.Invalidator]) which credential was
// rejected, asks for fresh credentials — which never starts an interactive
// login unless the handler was configured to — and replays the request once.
// A second 401 is returned to the caller.
//
// # DPoP
//
// With a handler that implements [auth.RequestAuthenticator] (every OAuth
// handler), each request to a service gets its headers for its method and
// URL: a DPoP-bound token goes with a new proof
// (https://www.rfc-editor.org/rfc/rfc9449#section-7). The session keeps
// the nonce each service hands out (DPoP-Nonce) for the next proofs, and
// a 401 with WWW-Authenticate: DPoP error="use_dpop_nonce" is replayed
// once with the new nonce, without invalidating the token (TestDPoPSession).
//
// # Logging
//
// With [Config.Logger] set, the session logs the method, the redacted URL
// (see [RedactURL]), the service, the status, the attempt and the wait. It
// never logs a header value.
package session
