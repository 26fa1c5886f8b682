package grpcauth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/metadata"

	"github.com/authkit-go/authkit/auth"
)

// DefaultAlgorithms returns the JWS algorithms a [JWTValidator] accepts
// when JWTConfig.Algorithms is empty: the asymmetric ones
// (https://www.rfc-editor.org/rfc/rfc7518#section-3.1 and
// https://www.rfc-editor.org/rfc/rfc8037#section-3.1). Each call returns a
// new slice.
func DefaultAlgorithms() []string {
	return []string{
		"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
		"ES256", "ES384", "ES512", "EdDSA",
	}
}

// JWTConfig configures a [JWTValidator]. Issuer, Audience and at least one
// source of keys (JWKSURL or Keys) are required.
type JWTConfig struct {
	// Issuer is the required "iss" claim.
	Issuer string
	// Audience is a value the "aud" claim must contain.
	Audience string
	// JWKSURL is where the issuer publishes its keys (JWK Set,
	// https://www.rfc-editor.org/rfc/rfc7517#section-5). They are fetched
	// when the validator is made and refreshed in the background, and at
	// once (rate limited) when a token names an unknown key. The URL must
	// be https, or http to a loopback address.
	JWKSURL string
	// HTTPClient fetches the JWK Set; nil means a client with a timeout.
	HTTPClient *http.Client
	// RefreshInterval spaces the background refreshes of the JWK Set;
	// zero means 1 hour.
	RefreshInterval time.Duration
	// Keys are verification keys by key id ("kid"), used before the JWK
	// Set: *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey, or []byte
	// (at least 32 bytes) for the HMAC algorithms. A token without a kid
	// is checked against every key of the right type.
	Keys map[string]crypto.PublicKey
	// Algorithms is the allowlist of "alg" values; empty means
	// DefaultAlgorithms(). "none" is refused, and a key is only ever used
	// with an algorithm of its own type, so a public RSA key never serves
	// as an HMAC secret.
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
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Wire names the metadata entry that carries the token; zero means
	// "authorization: Bearer <token>".
	Wire auth.Wire
	// Logger receives the JWK Set's refresh failures; nil means silent.
	Logger *slog.Logger
}

// JWTValidator is a [Validator] for bearer JWTs
// (https://www.rfc-editor.org/rfc/rfc7519#section-7.2). It checks the
// signature against the allowlist of algorithms, then "iss", "aud", "exp",
// "nbf" and "iat" with a small leeway, and the required claims. It is safe
// for concurrent use; Close it to stop the background refresh.
type JWTValidator struct {
	field    auth.Field
	keys     map[string]crypto.PublicKey
	jwks     keyfunc.Keyfunc // nil without JWKSURL
	cancel   context.CancelFunc
	parser   *jwt.Parser
	required []string
	username string
}

// NewJWTValidator validates cfg and returns a validator. With a JWKSURL it
// fetches the keys once before returning; a failed first fetch is logged,
// not returned, and the keys are fetched again when a token needs them.
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
	algs := cfg.Algorithms
	if len(algs) == 0 {
		algs = DefaultAlgorithms()
	}
	for _, a := range algs {
		if strings.EqualFold(a, "none") {
			return nil, auth.ConfigError("grpcauth: algorithm \"none\" is never accepted")
		}
		if jwt.GetSigningMethod(a) == nil || keyFamily(a) == "" {
			return nil, auth.ConfigError("grpcauth: unknown JWS algorithm %q", a)
		}
	}
	keys := make(map[string]crypto.PublicKey, len(cfg.Keys))
	for kid, k := range cfg.Keys {
		switch k := k.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		case []byte:
			if len(k) < 32 {
				return nil, auth.ConfigError("grpcauth: the HMAC key %q is shorter than 32 bytes", kid)
			}
		default:
			return nil, auth.ConfigError("grpcauth: key %q has unsupported type %T; give a public key or an HMAC secret ([]byte)", kid, k)
		}
		keys[kid] = k
	}
	leeway := cfg.Leeway
	if leeway == 0 {
		leeway = 30 * time.Second
	}
	leeway = max(leeway, 0)
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	v := &JWTValidator{
		field: cfg.Wire.WithDefaults().MessageService,
		keys:  keys,
		parser: jwt.NewParser(
			jwt.WithValidMethods(slices.Clone(algs)),
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithAudience(cfg.Audience),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(leeway),
			jwt.WithTimeFunc(now),
		),
		required: slices.Clone(cfg.RequiredClaims),
		username: cfg.UsernameClaim,
	}
	if v.username == "" {
		v.username = "preferred_username"
	}
	if cfg.JWKSURL != "" {
		if err := checkJWKSURL(cfg.JWKSURL); err != nil {
			return nil, err
		}
		log := cfg.Logger
		if log == nil {
			log = slog.New(slog.DiscardHandler)
		}
		client := cfg.HTTPClient
		if client == nil {
			client = &http.Client{Timeout: 30 * time.Second}
		}
		ctx, cancel := context.WithCancel(context.Background())
		kf, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{cfg.JWKSURL}, keyfunc.Override{
			Client:          client,
			RefreshInterval: cfg.RefreshInterval,
			// A token naming an unknown key refreshes the set at most every
			// 5 minutes (keyfunc's default); a call never waits more than a
			// second for its turn.
			RateLimitWaitMax: time.Second,
			RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
				return func(ctx context.Context, err error) {
					log.WarnContext(ctx, "grpcauth: JWK Set refresh failed", "url", u, "error", err)
				}
			},
		})
		if err != nil {
			cancel()
			return nil, fmt.Errorf("grpcauth: JWK Set %s: %w", cfg.JWKSURL, err)
		}
		v.jwks, v.cancel = kf, cancel
	}
	return v, nil
}

// Close stops the background refresh of the JWK Set.
func (v *JWTValidator) Close() error {
	if v.cancel != nil {
		v.cancel()
	}
	return nil
}

// Validate checks the bearer JWT in md and returns its identity.
func (v *JWTValidator) Validate(ctx context.Context, md metadata.MD) (*Identity, error) {
	raw, err := credential(md, v.field)
	if err != nil {
		return nil, err
	}
	claims := jwt.MapClaims{}
	if _, err := v.parser.ParseWithClaims(raw, claims, v.keyfunc(ctx)); err != nil {
		return nil, jwtError(err)
	}
	for _, c := range v.required {
		if val, ok := claims[c]; !ok || val == nil || val == "" {
			return nil, refuse(ErrMissingClaim, "grpcauth: the token lacks the claim \""+c+"\" this service requires",
				fmt.Errorf("claim %q missing", c))
		}
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

// jwtError turns a parse error into a refusal whose message helps the
// caller but never says why a signature failed.
func jwtError(err error) *Error {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return refuse(ErrMalformedCredentials, "grpcauth: the bearer token is not a well-formed JWT", err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
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

// keyfunc finds the keys that may have signed t, of the type its algorithm
// needs.
func (v *JWTValidator) keyfunc(ctx context.Context) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		alg := t.Method.Alg()
		family := keyFamily(alg)
		kid, hasKid := t.Header["kid"].(string)
		if hasKid {
			if k, ok := v.keys[kid]; ok {
				if keyFamilyOf(k) != family {
					return nil, fmt.Errorf("key %q cannot verify %s", kid, alg)
				}
				return k, nil
			}
		}
		var set jwt.VerificationKeySet
		if !hasKid {
			for _, k := range v.keys {
				if keyFamilyOf(k) == family {
					set.Keys = append(set.Keys, k)
				}
			}
		}
		if v.jwks != nil {
			k, err := v.jwks.KeyfuncCtx(ctx)(t)
			if err != nil && len(set.Keys) == 0 {
				return nil, err
			}
			if ks, ok := k.(jwt.VerificationKeySet); ok {
				for _, k := range ks.Keys {
					if keyFamilyOf(k) == family {
						set.Keys = append(set.Keys, k)
					}
				}
			} else if k != nil {
				if keyFamilyOf(k) != family {
					return nil, fmt.Errorf("key %q cannot verify %s", kid, alg)
				}
				return k, nil
			}
		}
		if len(set.Keys) == 0 {
			return nil, fmt.Errorf("no key for kid %q and alg %s", kid, alg)
		}
		return set, nil
	}
}

// keyFamily is the key type an algorithm needs.
func keyFamily(alg string) string {
	switch {
	case alg == "EdDSA":
		return "ed25519"
	case len(alg) != 5:
		return ""
	case strings.HasPrefix(alg, "HS"):
		return "hmac"
	case strings.HasPrefix(alg, "RS"), strings.HasPrefix(alg, "PS"):
		return "rsa"
	case strings.HasPrefix(alg, "ES"):
		return "ecdsa"
	}
	return ""
}

// keyFamilyOf is the type of a verification key.
func keyFamilyOf(k any) string {
	switch k.(type) {
	case []byte:
		return "hmac"
	case *rsa.PublicKey:
		return "rsa"
	case *ecdsa.PublicKey:
		return "ecdsa"
	case ed25519.PublicKey:
		return "ed25519"
	}
	return ""
}

// checkJWKSURL admits https URLs, and http URLs to loopback addresses.
func checkJWKSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return auth.ConfigError("grpcauth: JWKSURL %q is not an absolute URL", raw)
	}
	if u.Scheme == "https" || u.Scheme == "http" && isLoopback(u.Hostname()) {
		return nil
	}
	return auth.ConfigError("grpcauth: JWKSURL %q must use https (http is allowed for loopback addresses only)", raw)
}
