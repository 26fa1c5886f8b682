package jwks

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/golang-jwt/jwt/v5"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/internal/jws"
)

// defaultAlgorithms returns the JWS algorithms a [Verifier] accepts when
// VerifierConfig.Algorithms is empty: the asymmetric ones of
// https://www.rfc-editor.org/rfc/rfc7518#section-3.1 and EdDSA
// (https://www.rfc-editor.org/rfc/rfc8037#section-3.1). Each call returns a
// new slice.
func defaultAlgorithms() []string {
	return []string{
		"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
		"ES256", "ES384", "ES512", "EdDSA",
	}
}

// VerifierConfig configures a [Verifier]. At least one source of keys
// (KeySet or Keys) is required.
type VerifierConfig struct {
	// KeySet supplies keys by kid; nil means static keys only. The
	// Verifier does not close it.
	KeySet *KeySet
	// Keys are static verification keys by kid, tried before the KeySet:
	// *rsa.PublicKey (at least 2048 bits), *ecdsa.PublicKey (P-256, P-384
	// or P-521), ed25519.PublicKey, or an auth.Secret (an HMAC secret of at
	// least 32 bytes; HS384 and HS512 need 48 and 64,
	// https://www.rfc-editor.org/rfc/rfc7518#section-3.2), which stays a
	// Secret inside the Verifier so that it never prints.
	Keys map[string]any
	// Algorithms is the allow-list of "alg" values; empty means
	// DefaultAlgorithms(). "none" is refused. The HMAC algorithms (HS256,
	// HS384, HS512) must be listed to be accepted, and then only verify
	// with auth.Secret keys.
	Algorithms []string
}

// Verifier checks the signatures of compact JWTs
// (https://www.rfc-editor.org/rfc/rfc7515#section-7.1) with keys from a
// [KeySet] and/or static keys, accepting only allow-listed algorithms whose
// key type matches: RSA keys of 2048 bits or more only for RS*/PS*
// (https://www.rfc-editor.org/rfc/rfc7518#section-3.3), EC keys only for
// the ES* of their curve, Ed25519 keys only for EdDSA, secrets only for
// HS*. It is safe for concurrent use.
type Verifier struct {
	set  *KeySet
	keys map[string]any
	algs []string
}

// NewVerifier validates cfg and returns a Verifier. Configuration errors
// wrap auth.ErrInvalidConfig.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	if cfg.KeySet == nil && len(cfg.Keys) == 0 {
		return nil, auth.ConfigError("jwks: VerifierConfig needs a KeySet or Keys to verify signatures")
	}
	v := &Verifier{set: cfg.KeySet, keys: maps.Clone(cfg.Keys), algs: slices.Clone(cfg.Algorithms)}
	if len(v.algs) == 0 {
		v.algs = defaultAlgorithms()
	}
	for _, a := range v.algs {
		if strings.EqualFold(a, "none") {
			return nil, auth.ConfigError("jwks: algorithm \"none\" is never accepted")
		}
		if !slices.Contains(knownAlgs(), a) {
			return nil, auth.ConfigError("jwks: unknown JWS algorithm %q; see DefaultAlgorithms", a)
		}
	}
	for kid, k := range v.keys {
		if s, ok := k.(auth.Secret); ok && len(s.Reveal()) < 32 {
			return nil, auth.ConfigError("jwks: the HMAC key %q is shorter than 32 bytes", kid)
		}
		if !slices.ContainsFunc(knownAlgs(), func(alg string) bool { return fits(alg, k) }) {
			return nil, auth.ConfigError("jwks: key %q is a %T this package cannot use; give an RSA (2048+ bits), "+
				"P-256/384/521 or Ed25519 public key, or an HMAC secret (auth.Secret)", kid, k)
		}
	}
	return v, nil
}

// Parse verifies raw's signature and decodes its claims into claims, then
// validates them. opts are golang-jwt parser options for the registered
// claims (jwt.WithIssuer, jwt.WithAudience, jwt.WithLeeway,
// jwt.WithTimeFunc, jwt.WithExpirationRequired...); the Verifier's
// allow-list is applied after them, so jwt.WithValidMethods in opts has no
// effect. Errors wrap golang-jwt's (jwt.ErrTokenExpired...) and, when no key
// could be had, ErrKeysUnavailable, ErrUnknownKey or ErrClosed. On error
// the token is nil.
//
// Static keys come first: a token whose kid names one uses only that key;
// a token without kid is tried against every static key of the right type
// and then every key of the KeySet.
func (v *Verifier) Parse(ctx context.Context, raw string, claims jwt.Claims, opts ...jwt.ParserOption) (*jwt.Token, error) {
	p := jwt.NewParser(append(slices.Clip(opts), jwt.WithValidMethods(v.algs))...)
	t, err := p.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) { return v.keysFor(ctx, t) })
	if err != nil {
		return nil, err
	}
	return t, nil
}

// keysFor returns the keys that may have signed t and fit its algorithm,
// which the parser has checked against the allow-list.
func (v *Verifier) keysFor(ctx context.Context, t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	kid, isString := t.Header["kid"].(string)
	if !isString && t.Header["kid"] != nil {
		return nil, fmt.Errorf("%w: the token's kid is not a string", ErrUnknownKey)
	}
	var found []jwt.VerificationKey
	if k, ok := v.keys[kid]; ok && kid != "" {
		if !fits(alg, k) {
			return nil, fmt.Errorf("%w: key %.64q cannot verify %s", ErrUnknownKey, kid, alg)
		}
		return verificationKey(k), nil
	}
	if kid == "" {
		for _, k := range v.keys {
			if fits(alg, k) {
				found = append(found, verificationKey(k))
			}
		}
	}
	if v.set != nil {
		remote, err := v.set.lookup(ctx, kid)
		if err != nil && len(found) == 0 {
			return nil, err
		}
		for _, k := range remote {
			if (k.alg == "" || k.alg == alg) && fits(alg, k.key) {
				found = append(found, k.key)
			}
		}
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("%w: no key with kid %.64q fits %s", ErrUnknownKey, kid, alg)
	}
	return jwt.VerificationKeySet{Keys: found}, nil
}

// knownAlgs returns the JWS signature algorithms this package verifies
// (https://www.rfc-editor.org/rfc/rfc7518#section-3.1).
func knownAlgs() []string { return append(defaultAlgorithms(), "HS256", "HS384", "HS512") }

// fits reports whether key may verify a signature made with alg.
func fits(alg string, key any) bool {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return (strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")) && k != nil && k.N != nil && k.N.BitLen() >= 2048
	case *ecdsa.PublicKey:
		return k != nil && jws.ECDSAAlgorithm(k.Curve) == alg
	case ed25519.PublicKey:
		return alg == "EdDSA" && len(k) == ed25519.PublicKeySize
	case auth.Secret: // as long as the hash at least (RFC 7518 §3.2)
		bits, err := strconv.Atoi(strings.TrimPrefix(alg, "HS"))
		return strings.HasPrefix(alg, "HS") && err == nil && len(k.Reveal())*8 >= bits
	}
	return false
}

// verificationKey is k as golang-jwt takes it: a secret's bytes, made at
// the moment of verification only.
func verificationKey(k any) any {
	if s, ok := k.(auth.Secret); ok {
		return []byte(s.Reveal())
	}
	return k
}
