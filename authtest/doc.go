// Package authtest holds test doubles for authkit, in the spirit of
// net/http/httptest: an in-process OAuth 2.0 / OpenID Connect [Provider]
// and a fake [Clock]; the fake platform is in authtest/platform.
//
// It is meant for tests, for runnable examples and for the tests of
// programs built on authkit. Library code must not import it: it generates
// keys at start, keeps every token in memory, and exposes what it received
// (secrets included) to the test that owns it.
//
// # The provider
//
// [NewProvider] starts an httptest server that serves OIDC discovery, a
// JWKS, a token endpoint (device code, client credentials, password with
// optional TOTP, refresh token with rotation and reuse detection), device
// authorization (RFC 8628) and revocation (RFC 7009). Tokens are RS256 JWTs
// signed with a key made at start; refresh tokens are opaque. Time comes
// from ProviderConfig.Clock, so a test moves a fake clock ([NewClock]) to
// reach an expiry instead of sleeping:
//
//	clock := authtest.NewClock(time.Time{})
//	p := authtest.NewProvider(authtest.ProviderConfig{
//		Clock:   clock,
//		Clients: []authtest.Client{{ID: "cli"}},
//		Users:   []authtest.User{{Username: "ada", Password: "pw"}},
//	})
//	defer p.Close()
//	p.OnDeviceAuthorization(func(code string) { p.ApproveDevice(code, "ada") })
//
// The device flow is driven from the test: [Provider.ApproveDevice] and
// [Provider.DenyDevice] decide a user code, [Provider.OnDeviceAuthorization]
// runs a hook (on the request goroutine, before the answer is sent) as each
// code is issued, and [Provider.AutoApprove] approves codes once a delay has
// passed on the provider's clock, checked when the client polls. A poll
// sooner than the interval after the previous one answers slow_down and
// grows that code's interval by 5 seconds (RFC 8628 §3.5).
//
// Refresh tokens rotate on every use; presenting a spent one revokes the
// whole chain. The error_description of every answer is an exported Desc...
// constant, so tests can assert on it.
//
// A token request with a DPoP proof (RFC 9449) gets token_type DPoP, an
// access token with cnf.jkt and a refresh token bound to the proof's key;
// with ProviderConfig.DPoPNonce, proofs must carry the provider's nonce
// ([Provider.RotateDPoPNonce], [Provider.DPoPNonceChallenges]).
//
// Tests steer the provider with fault injection ([Provider.FailNext],
// [Provider.MalformNext], [Provider.ForceSlowDown], [Provider.SetLatency],
// [Provider.OmitRefreshToken]) and assert on what it received with
// [Provider.Requests], [Provider.GrantRequests], [Provider.Counts] and
// [Provider.LastRequest]. Every method is safe for concurrent use.
//
// # The platform
//
// The fake platform the SDKs talk to — hub, access manager and message
// service — is package [github.com/authkit-go/authkit/authtest/platform],
// kept apart because it needs gRPC: a program that starts only the provider
// (the authkit command's demo, say) does not link it.
package authtest
