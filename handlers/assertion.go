package handlers

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/MicahParks/jwkset"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/internal/jws"
)

// ClientAssertionType is the client_assertion_type of a JWT client
// assertion (https://www.rfc-editor.org/rfc/rfc7523#section-2.2).
const ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// An AssertionSource authenticates an OAuth client with a JWT instead of a
// secret: the client_assertion of RFC 7523 §2.2 ("private_key_jwt" in
// OpenID Connect Core §9 when the client signs it, a federated token when
// its platform issued it). Set one as [OAuthConfig.ClientAssertion]. The
// handler asks for an assertion per request to the provider, never per
// header read.
//
// [*PrivateKeyJWT] signs one; [FederatedTokenFile], [GitHubActionsToken]
// and [CommandToken] pass on a token the workload's platform issued.
type AssertionSource interface {
	Assertion(ctx context.Context, req AssertionRequest) (auth.Secret, error)
}

// AssertionRequest is what an assertion is for.
type AssertionRequest struct {
	// ClientID is the client that authenticates: the assertion's iss and
	// sub.
	ClientID string
	// Audience is the URL of the endpoint the request goes to (the token
	// endpoint, for token requests): the assertion's aud.
	Audience string
	// Now is the handler's clock's time.
	Now time.Time
}

// MaxAssertionLifetime bounds [PrivateKeyJWTConfig.Lifetime].
const MaxAssertionLifetime = 5 * time.Minute

// PrivateKeyJWTConfig configures [NewPrivateKeyJWT].
type PrivateKeyJWTConfig struct {
	// Key signs the assertions. Any crypto.Signer: a key in memory (see
	// [ParsePrivateKeyPEM], [ParsePrivateKeyJWK]) or one in a KMS, an HSM
	// or a PKCS#11 token. Required. RSA keys have at least 2048 bits.
	Key crypto.Signer
	// Algorithm is RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384,
	// ES512 or EdDSA; empty means RS256 for RSA keys, ES256/384/512 by the
	// curve of ECDSA keys, EdDSA for Ed25519 keys.
	Algorithm string
	// KeyID is the JWS header's kid; empty means the key's JWK thumbprint
	// (https://www.rfc-editor.org/rfc/rfc7638).
	KeyID string
	// Audience is the assertions' aud; empty means the URL of the endpoint
	// each request goes to, as RFC 7523 §3 says. Some providers want their
	// issuer instead.
	Audience string
	// Lifetime is how long an assertion is valid; zero means 1 minute, at
	// most MaxAssertionLifetime.
	Lifetime time.Duration
}

// PrivateKeyJWT signs client assertions with a private key: the
// "private_key_jwt" client authentication of OpenID Connect Core §9 and
// RFC 7523 §2.2. Each assertion has iss and sub the client id, aud the
// endpoint (or Audience), a random 256-bit jti (unique across processes),
// iat and exp. It never
// prints its key. It is safe for concurrent use when its key is.
type PrivateKeyJWT struct {
	signer   *jws.Signer
	audience string
	lifetime time.Duration
}

// NewPrivateKeyJWT validates cfg and returns the source.
func NewPrivateKeyJWT(cfg PrivateKeyJWTConfig) (*PrivateKeyJWT, error) {
	if cfg.Lifetime < 0 || cfg.Lifetime > MaxAssertionLifetime {
		return nil, auth.ConfigError("handlers: PrivateKeyJWT: Lifetime must be between 0 and %s", MaxAssertionLifetime)
	}
	s, err := jws.NewSigner(cfg.Key, cfg.Algorithm, cfg.KeyID, "")
	if err != nil {
		return nil, auth.ConfigError("handlers: PrivateKeyJWT: %v", err)
	}
	k := &PrivateKeyJWT{signer: s, audience: cfg.Audience, lifetime: cfg.Lifetime}
	if k.lifetime == 0 {
		k.lifetime = time.Minute
	}
	return k, nil
}

// assertionClaims are the claims of RFC 7523 §3.
type assertionClaims struct {
	Iss string `json:"iss"`
	Sub string `json:"sub"`
	Aud string `json:"aud"`
	Jti string `json:"jti"`
	Iat int64  `json:"iat"`
	Nbf int64  `json:"nbf"` // RFC 7523 leaves it optional; Microsoft Entra asks for it
	Exp int64  `json:"exp"`
}

// Assertion signs a new assertion for req.
func (k *PrivateKeyJWT) Assertion(_ context.Context, req AssertionRequest) (auth.Secret, error) {
	aud := k.audience
	if aud == "" {
		aud = req.Audience
	}
	now := req.Now
	if now.IsZero() {
		now = time.Now()
	}
	jwt, err := k.signer.Sign(assertionClaims{Iss: req.ClientID, Sub: req.ClientID, Aud: aud, Jti: randomToken(), // 256 random bits: unique across processes
		Iat: now.Unix(), Nbf: now.Unix(), Exp: now.Add(k.lifetime).Unix()})
	if err != nil {
		return auth.Secret{}, fmt.Errorf("handlers: private_key_jwt: %w", err)
	}
	return auth.NewSecret(jwt), nil
}

// KeyID is the kid of the assertions.
func (k *PrivateKeyJWT) KeyID() string { return k.signer.KeyID() }

// Algorithm is the alg of the assertions.
func (k *PrivateKeyJWT) Algorithm() string { return k.signer.Algorithm() }

// PublicJWK is the public key as a JWK (JSON), to register the client at
// the provider.
func (k *PrivateKeyJWT) PublicJWK() ([]byte, error) {
	m, err := jws.JWK(k.signer.Public(), k.signer.KeyID(), k.signer.Algorithm())
	if err != nil {
		return nil, err
	}
	return json.Marshal(m)
}

// String names the key by its kid and algorithm, never its material.
func (k *PrivateKeyJWT) String() string {
	if k == nil {
		return "PrivateKeyJWT(nil)"
	}
	return "PrivateKeyJWT{alg: " + k.signer.Algorithm() + ", kid: " + k.signer.KeyID() + "}"
}

// Format prints String for every verb: %#v and %+v included.
func (k *PrivateKeyJWT) Format(f fmt.State, _ rune) { fmt.Fprint(f, k.String()) }

// LogValue logs String.
func (k *PrivateKeyJWT) LogValue() slog.Value { return slog.StringValue(k.String()) }

// ParsePrivateKeyPEM parses a PEM private key: PKCS #8 ("PRIVATE KEY":
// RSA, ECDSA, Ed25519), PKCS #1 ("RSA PRIVATE KEY") or SEC 1 ("EC PRIVATE
// KEY"). Encrypted PEM is refused. Errors never hold key material.
func ParsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("handlers: ParsePrivateKeyPEM: no PEM block")
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "ENCRYPTED PRIVATE KEY":
		return nil, errors.New("handlers: ParsePrivateKeyPEM: the key is encrypted; decrypt it first or use a crypto.Signer of your own")
	default:
		return nil, fmt.Errorf("handlers: ParsePrivateKeyPEM: a %q block is not a private key", block.Type)
	}
	if err != nil {
		return nil, errors.New("handlers: ParsePrivateKeyPEM: malformed " + block.Type)
	}
	return signerOf(key, "ParsePrivateKeyPEM")
}

// ParsePrivateKeyJWK parses a private JSON Web Key (RFC 7517: RSA, EC or
// OKP/Ed25519 with its private members). Errors never hold key material.
func ParsePrivateKeyJWK(data []byte) (crypto.Signer, error) {
	j, err := jwkset.NewJWKFromRawJSON(data, jwkset.JWKMarshalOptions{Private: true}, jwkset.JWKValidateOptions{})
	if err != nil {
		return nil, errors.New("handlers: ParsePrivateKeyJWK: not a valid private JWK")
	}
	return signerOf(j.Key(), "ParsePrivateKeyJWK")
}

func signerOf(key any, fn string) (crypto.Signer, error) {
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("handlers: %s: %T is not a private key", fn, key)
	}
	if jws.DefaultAlgorithm(s.Public()) == "" {
		return nil, fmt.Errorf("handlers: %s: unsupported key type %T", fn, s.Public())
	}
	return s, nil
}
