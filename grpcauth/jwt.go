package grpcauth

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/internal/dpop"
	"github.com/authkit-go/authkit/internal/jwks"
	"github.com/authkit-go/authkit/internal/netpolicy"
)

// JWTConfig configures a [JWTValidator]. Issuer, Audience and at least one
// source of keys (JWKSURL or Keys) are required.
type JWTConfig struct {
	// Issuer is the required "iss" claim.
	Issuer string
	// Audience is a value the "aud" claim must contain.
	Audience string
	// JWKSURL is where the issuer publishes its keys (JWK Set,
	// https://www.rfc-editor.org/rfc/rfc7517#section-5). They are fetched
	// when a token first needs them, one fetch at a time, each call waiting
	// only as long as its ctx allows; again after RefreshInterval; and at
	// once when a token names a key the set lacks — a key the issuer has
	// just added verifies on its first use (TestJWTValidatorJWKS) —
	// then at most once every 10 s for further unknown keys. A fetch that
	// fails keeps the keys already known. The URL must be https, or http
	// to a loopback address.
	JWKSURL string
	// HTTPClient fetches the JWK Set; nil means a client with a 30 s
	// timeout. Redirects from https to http are refused.
	HTTPClient *http.Client
	// RefreshInterval is how long a fetched JWK Set is used before the next
	// use fetches it again; zero means 1 hour.
	RefreshInterval time.Duration
	// Keys are verification keys by key id ("kid"), used before the JWK
	// Set: *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey, or an
	// auth.Secret (at least 32 bytes) for the HMAC algorithms. A token
	// without a kid is checked against every key of the right type.
	Keys map[string]crypto.PublicKey
	// Algorithms is the allowlist of "alg" values; empty means the
	// asymmetric ones (RS256/384/512, PS256/384/512, ES256/384/512,
	// EdDSA). "none" is refused, and a key is only ever used with an
	// algorithm of its own type, so a public RSA key never serves as an
	// HMAC secret.
	Algorithms []string
	// Leeway is the clock skew allowed on "exp", "nbf" and "iat"; zero
	// means 30 seconds, negative means none.
	Leeway time.Duration
	// RequiredClaims are claims a token must carry besides "iss", "aud"
	// and "exp" (always required), e.g. "sub".
	RequiredClaims []string
	// UsernameClaim names the claim read into Identity.Username; zero
	// means "preferred_username".
	UsernameClaim string
	// Clock is the clock of expiry checks and key refreshes; nil means
	// auth.SystemClock().
	Clock auth.Clock
	// Wire names the metadata entry that carries the token; zero means
	// "authorization: Bearer <token>".
	Wire auth.Wire
	// Logger receives the JWK Set's fetch failures; nil means silent.
	Logger *slog.Logger
	// RequireDPoP refuses bearer tokens: every token must be DPoP-bound
	// (https://www.rfc-editor.org/rfc/rfc9449). Without it a token is
	// checked as it was issued: a bound one (cnf.jkt) only with a proof, an
	// unbound one as a bearer token.
	RequireDPoP bool
	// DPoPWindow is how old a DPoP proof may be (by its iat); zero means
	// 1 minute. A proof is accepted once: its jti is remembered for as
	// long, by this validator (one process: replicas of a service each
	// accept a proof once).
	DPoPWindow time.Duration
	// DPoPAuthorities are the authorities (host, or host:port) clients
	// reach this service by; a DPoP proof must name one of them. Empty
	// means the request's own :authority (or Host), which the caller
	// chooses: then a service that received a token and its proof, and
	// shares the token's audience with this one, could replay both here
	// within DPoPWindow. Set it when services share an audience.
	DPoPAuthorities []string
}

// JWTValidator is a [Validator] for bearer JWTs
// (https://www.rfc-editor.org/rfc/rfc7519#section-7.2). It checks the
// signature against the allowlist of algorithms, then "iss", "aud", "exp",
// "nbf" and "iat" with a small leeway, and the required claims. It is safe
// for concurrent use. It starts no goroutine; Close ends a JWK Set fetch in
// flight.
//
// A token bound to a DPoP key (its "cnf" claim has a "jkt",
// https://www.rfc-editor.org/rfc/rfc9449#section-6) is accepted only as
// "authorization: DPoP <token>" with a "dpop" entry holding a proof
// (https://www.rfc-editor.org/rfc/rfc9449#section-4.3): signed with the
// key the token is bound to, for this RPC (htm POST, htu
// https://<authority>/<service>/<method>, see [auth.RPCTargetURI]; for
// HTTP, the request that [WithHTTPRequest] names), with the token's hash
// (ath), made within DPoPWindow and never seen before. A bound token sent
// as a bearer token is refused: whoever copied it lacks the key.
type JWTValidator struct {
	field    auth.Field
	dpop     *dpop.Verifier
	reqDPoP  bool
	dpopHost map[string]bool // DPoPAuthorities, lowercase, without a default port; nil: any
	verifier *jwks.Verifier
	keySet   *jwks.KeySet // nil without JWKSURL
	opts     []jwt.ParserOption
	required []string
	username string
}

// NewJWTValidator validates cfg and returns a validator. It performs no
// I/O: the JWK Set is fetched when a token first needs it.
func NewJWTValidator(cfg JWTConfig) (*JWTValidator, error) {
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, auth.ConfigError("grpcauth: JWTConfig needs Issuer and Audience, the values this service expects in \"iss\" and \"aud\"")
	}
	if cfg.JWKSURL == "" && len(cfg.Keys) == 0 {
		return nil, auth.ConfigError("grpcauth: JWTConfig needs JWKSURL or Keys to verify signatures")
	}
	if err := cfg.Wire.Validate(); err != nil {
		return nil, err
	}
	leeway := cfg.Leeway
	if leeway == 0 {
		leeway = 30 * time.Second
	}
	clock := cfg.Clock
	if clock == nil {
		clock = auth.SystemClock()
	}
	now := clock.Now
	v := &JWTValidator{
		field: cfg.Wire.WithDefaults().MessageService,
		opts: []jwt.ParserOption{
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithAudience(cfg.Audience),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(max(leeway, 0)),
			jwt.WithTimeFunc(now),
		},
		required: slices.Clone(cfg.RequiredClaims),
		username: cfg.UsernameClaim,
		dpop:     dpop.NewVerifier(now, cfg.DPoPWindow),
		reqDPoP:  cfg.RequireDPoP,
	}
	for _, a := range cfg.DPoPAuthorities {
		if a == "" || strings.ContainsAny(a, "/?#@ ") {
			return nil, auth.ConfigError("grpcauth: DPoPAuthorities holds %q, which is not a host or host:port", a)
		}
		if v.dpopHost == nil {
			v.dpopHost = map[string]bool{}
		}
		v.dpopHost[strings.TrimSuffix(strings.ToLower(a), ":443")] = true
	}
	if v.username == "" {
		v.username = "preferred_username"
	}
	if cfg.JWKSURL != "" {
		if _, err := netpolicy.CheckURL(cfg.JWKSURL); err != nil {
			return nil, auth.ConfigError("grpcauth: JWKSURL: %v", err)
		}
		ks, err := jwks.NewKeySet(jwks.Config{URL: cfg.JWKSURL, HTTPClient: cfg.HTTPClient, Clock: clock,
			TTL: cfg.RefreshInterval, Logger: cfg.Logger})
		if err != nil {
			return nil, err
		}
		v.keySet = ks
	}
	keys := make(map[string]any, len(cfg.Keys))
	for kid, k := range cfg.Keys {
		keys[kid] = k
	}
	verifier, err := jwks.NewVerifier(jwks.VerifierConfig{KeySet: v.keySet, Keys: keys, Algorithms: cfg.Algorithms})
	if err != nil {
		v.Close()
		return nil, fmt.Errorf("grpcauth: %w", err)
	}
	v.verifier = verifier
	return v, nil
}

// Close ends a JWK Set fetch in flight; later validations of tokens that
// need the JWK Set fail.
func (v *JWTValidator) Close() error {
	if v.keySet != nil {
		return v.keySet.Close()
	}
	return nil
}

// Validate checks the bearer JWT in md and returns its identity. When the
// signing keys cannot be fetched it answers codes.Unavailable: the caller
// may retry (TestJWTValidatorKeysUnavailable).
func (v *JWTValidator) Validate(ctx context.Context, md metadata.MD) (*Identity, error) {
	raw, bound, err := v.token(md)
	if err != nil {
		return nil, err
	}
	claims := jwt.MapClaims{}
	if _, err := v.verifier.Parse(ctx, raw, claims, v.opts...); err != nil {
		if errors.Is(err, jwks.ErrKeysUnavailable) {
			return nil, status.Error(codes.Unavailable, "grpcauth: the token's signing keys cannot be fetched now; retry later")
		}
		return nil, jwtError(err)
	}
	for _, c := range v.required {
		if val, ok := claims[c]; !ok || val == nil || val == "" {
			return nil, refuse(ErrMissingClaim, "grpcauth: the token lacks the claim \""+c+"\" this service requires",
				fmt.Errorf("claim %q missing", c))
		}
	}
	if err := v.checkDPoP(ctx, md, raw, bound, claims); err != nil {
		return nil, err
	}
	id := &Identity{Claims: claims}
	var (
		errs [3]error
		exp  *jwt.NumericDate
	)
	id.Subject, errs[0] = claims.GetSubject()
	id.Issuer, errs[1] = claims.GetIssuer()
	exp, errs[2] = claims.GetExpirationTime()
	if err := errors.Join(errs[:]...); err != nil {
		return nil, refuse(ErrMalformedCredentials, "grpcauth: the token's claims have the wrong types", err)
	}
	id.Expiry = exp.Time
	id.Username, _ = claims[v.username].(string)
	return id, nil
}

// token returns the token in md and whether it came as a DPoP token: under
// the DPoP scheme, which replaces the standard Bearer prefix (in any case),
// or, for a wire without that prefix (e.g. a bare token under "token"),
// which cannot name a scheme, with a "dpop" proof beside it.
func (v *JWTValidator) token(md metadata.MD) (string, bool, error) {
	if !strings.EqualFold(v.field.Prefix, auth.DefaultBearerPrefix) {
		raw, err := credential(md, v.field)
		return raw, len(md.Get(strings.ToLower(auth.DPoPHeader))) > 0, err
	}
	if vals := md.Get(v.field.Name); len(vals) == 1 {
		if p := auth.DPoPScheme + " "; len(vals[0]) > len(p) && strings.EqualFold(vals[0][:len(p)], p) {
			return strings.TrimLeft(vals[0][len(p):], " "), true, nil
		}
	}
	raw, err := credential(md, v.field)
	return raw, false, err
}

// checkDPoP holds a token sent under the DPoP scheme, and one bound to a
// key, to the proof md carries; see [JWTValidator].
func (v *JWTValidator) checkDPoP(ctx context.Context, md metadata.MD, raw string, bound bool, claims jwt.MapClaims) error {
	cnf, _ := claims["cnf"].(map[string]any)
	jkt, _ := cnf["jkt"].(string)
	switch {
	case jkt == "" && bound:
		return refuse(ErrInvalidCredentials, "grpcauth: a token sent as DPoP must be bound to a key (cnf.jkt)", nil)
	case jkt == "" && v.reqDPoP:
		return refuse(ErrInvalidCredentials, "grpcauth: this service accepts DPoP-bound tokens only; enable DPoP in the client's handler", nil)
	case jkt == "":
		return nil
	case !bound && strings.EqualFold(v.field.Prefix, auth.DefaultBearerPrefix):
		return refuse(ErrInvalidCredentials, "grpcauth: the token is DPoP-bound: send it as \""+v.field.Name+": DPoP <token>\" with a \"dpop\" proof", nil)
	case !bound:
		return refuse(ErrInvalidCredentials, "grpcauth: the token is DPoP-bound: send a \"dpop\" proof with it", nil)
	}
	proofs := md.Get(strings.ToLower(auth.DPoPHeader))
	if len(proofs) != 1 {
		return refuse(ErrInvalidCredentials, "grpcauth: a DPoP-bound token needs exactly one \"dpop\" proof", nil)
	}
	method, uri, ok := requestTarget(ctx, md)
	if !ok {
		return refuse(ErrInvalidCredentials, "grpcauth: the request's target is unknown, so its DPoP proof cannot be checked", nil)
	}
	if v.dpopHost != nil {
		u, err := url.Parse(uri)
		if err != nil || !v.dpopHost[strings.TrimSuffix(strings.ToLower(u.Host), ":443")] {
			return refuse(ErrInvalidCredentials, "grpcauth: the request names another service than this one (DPoPAuthorities)", nil)
		}
	}
	if _, err := v.dpop.Verify(proofs[0], dpop.Request{Method: method, URI: uri, AccessToken: raw, JKT: jkt}); err != nil {
		return refuse(ErrInvalidCredentials, "grpcauth: invalid DPoP proof", err)
	}
	return nil
}

// httpTarget is the context key of WithHTTPRequest.
type httpTarget struct{ method, uri string }

// WithHTTPRequest returns ctx naming the HTTP request whose headers a
// validator checks (as metadata): a DPoP proof must name its method and
// URI. Without it, the request is the gRPC call of ctx.
func WithHTTPRequest(ctx context.Context, method, uri string) context.Context {
	return context.WithValue(ctx, httpTarget{}, httpTarget{method, uri})
}

// requestTarget is the method and URI a proof must name: the HTTP request
// of WithHTTPRequest, else the RPC (POST to https://<authority><method>).
func requestTarget(ctx context.Context, md metadata.MD) (string, string, bool) {
	if t, ok := ctx.Value(httpTarget{}).(httpTarget); ok {
		return t.method, t.uri, true
	}
	m, ok := grpc.Method(ctx)
	authority := md.Get(":authority")
	if !ok || len(authority) != 1 {
		return "", "", false
	}
	return http.MethodPost, "https://" + authority[0] + m, true
}

// jwtError turns a parse error into a refusal whose message helps the
// caller but never says why a signature failed.
func jwtError(err error) *Error {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return refuse(ErrMalformedCredentials, "grpcauth: the bearer token is not a well-formed JWT", err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable), errors.Is(err, jwks.ErrUnknownKey):
		return refuse(ErrInvalidCredentials, "grpcauth: invalid token", err)
	case errors.Is(err, jwt.ErrTokenExpired), errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return refuse(ErrExpired, "grpcauth: the token is expired or not valid yet; get a new token and retry", err)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer), errors.Is(err, jwt.ErrTokenInvalidAudience):
		return refuse(ErrWrongAudience, "grpcauth: the token was not issued for this service (check its issuer and audience)", err)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return refuse(ErrMissingClaim, "grpcauth: the token lacks a claim this service requires (iss, aud, exp)", err)
	case errors.Is(err, jwt.ErrInvalidType):
		return refuse(ErrMalformedCredentials, "grpcauth: the token's claims have the wrong types", err)
	}
	return refuse(ErrInvalidCredentials, "grpcauth: invalid token", err)
}
