package dpop

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/authkit-go/authkit/internal/jws"
)

// Errors of Verify. ErrUseNonce means the proof lacks the nonce the server
// requires (the client retries with it, RFC 9449 §8–9); every other
// refusal wraps ErrInvalidProof.
var (
	ErrInvalidProof = errors.New("invalid DPoP proof")
	ErrUseNonce     = errors.New("DPoP proof lacks the server's nonce")
)

// Verifier checks proofs at a server
// (https://www.rfc-editor.org/rfc/rfc9449#section-4.3): their form, their
// signature with the key they carry, the request they name, their age, the
// access token and key they are bound to, the nonce, and that no proof is
// used twice within the time it is accepted. It is safe for concurrent use.
type Verifier struct {
	now    func() time.Time
	window time.Duration // how old a proof may be
	skew   time.Duration // how far in the future iat may be

	mu      sync.Mutex           // guards seen and inserts
	seen    map[string]time.Time // jti → when it may be forgotten
	inserts int
}

// Window is how old a proof may be, by its iat, unless configured
// otherwise: a proof is made for one request and sent at once.
const Window = time.Minute

// Skew is how far ahead of the server's clock a proof's iat may be.
const Skew = 5 * time.Second

// NewVerifier returns a verifier on the clock now (nil: time.Now) that
// accepts proofs at most window old (zero: Window).
func NewVerifier(now func() time.Time, window time.Duration) *Verifier {
	if now == nil {
		now = time.Now
	}
	if window <= 0 {
		window = Window
	}
	return &Verifier{now: now, window: window, skew: Skew, seen: map[string]time.Time{}}
}

// algorithms are the asymmetric algorithms a proof may be signed with.
var algorithms = []string{"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"}

// Request is what a proof is checked against.
type Request struct {
	// Method and URI are the request's (htm, htu).
	Method, URI string
	// AccessToken, when set, is the token the request carries: the proof's
	// ath must be its hash.
	AccessToken string
	// JKT, when set, is the thumbprint the token is bound to (cnf.jkt):
	// the proof's key must have it.
	JKT string
	// Nonce, when set, is the nonce the proof must carry.
	Nonce string
}

// Proven is what a valid proof tells.
type Proven struct {
	// JKT is the thumbprint of the proof's key.
	JKT string
}

// Verify checks proof against r and records its jti.
func (v *Verifier) Verify(proof string, r Request) (Proven, error) {
	bad := func(format string, args ...any) (Proven, error) {
		return Proven{}, fmt.Errorf("%w: %s", ErrInvalidProof, fmt.Sprintf(format, args...))
	}
	var c proofClaims
	var jkt string
	_, err := jwt.ParseWithClaims(proof, &c, func(t *jwt.Token) (any, error) {
		if typ, _ := t.Header["typ"].(string); !strings.EqualFold(typ, "dpop+jwt") {
			return nil, errors.New("typ is not dpop+jwt")
		}
		key, err := headerKey(t.Header["jwk"])
		if err != nil {
			return nil, err
		}
		if jkt, err = jws.Thumbprint(key); err != nil {
			return nil, err
		}
		return key, nil
	}, jwt.WithValidMethods(algorithms), jwt.WithoutClaimsValidation())
	if err != nil {
		return bad("%v", err)
	}
	if c.ID == "" || len(c.ID) > 256 {
		return bad("no jti, or one over 256 bytes")
	}
	if c.Htm != r.Method {
		return bad("htm %q, the request is a %s", c.Htm, r.Method)
	}
	if !sameURI(c.Htu, r.URI) {
		return bad("htu %q names another resource than %q", c.Htu, r.URI)
	}
	if c.IssuedAt == nil {
		return bad("no iat")
	}
	now := v.now()
	iat := c.IssuedAt.Time
	if iat.After(now.Add(v.skew)) || iat.Before(now.Add(-v.window)) {
		return bad("iat %s is outside [now-%s, now+%s]", iat.UTC().Format(time.RFC3339), v.window, v.skew)
	}
	if r.AccessToken != "" && c.Ath != AccessTokenHash(r.AccessToken) {
		return bad("ath is not the hash of the access token sent")
	}
	if r.AccessToken == "" && c.Ath != "" {
		return bad("ath without an access token")
	}
	if r.JKT != "" && jkt != r.JKT {
		return bad("the proof's key is not the one the token is bound to")
	}
	if r.Nonce != "" && c.Nonce != r.Nonce {
		return Proven{}, ErrUseNonce
	}
	if !v.remember(c.ID, iat, now) {
		return bad("jti was used before (a replayed proof)")
	}
	return Proven{JKT: jkt}, nil
}

// proofClaims are a proof's claims as a server reads them: jti is ID.
type proofClaims struct {
	jwt.RegisteredClaims
	Htm   string `json:"htm"`
	Htu   string `json:"htu"`
	Ath   string `json:"ath"`
	Nonce string `json:"nonce"`
}

// remember records jti until no proof made at iat is accepted any more,
// and reports whether it was new.
func (v *Verifier) remember(jti string, iat, now time.Time) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if until, ok := v.seen[jti]; ok && now.Before(until) {
		return false
	}
	v.inserts++
	if v.inserts%1024 == 0 {
		for k, until := range v.seen {
			if !now.Before(until) {
				delete(v.seen, k)
			}
		}
	}
	v.seen[jti] = iat.Add(v.window + v.skew)
	return true
}

// headerKey is the public key of a proof's jwk header: an EC, RSA or OKP
// key, never a private or symmetric one.
func headerKey(h any) (any, error) {
	raw, err := json.Marshal(h)
	if err != nil || h == nil {
		return nil, errors.New("no jwk header")
	}
	var m jwkset.JWKMarshal
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, errors.New("jwk header is not a JWK")
	}
	if m.D != "" || m.K != "" || m.P != "" || m.Q != "" {
		return nil, errors.New("jwk header holds a private or symmetric key")
	}
	j, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
	if err != nil {
		return nil, fmt.Errorf("jwk header: %v", err)
	}
	switch k := j.Key().(type) {
	case *ecdsa.PublicKey, ed25519.PublicKey:
		return k, nil
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, errors.New("jwk header holds an RSA key under 2048 bits")
		}
		return k, nil
	}
	return nil, errors.New("jwk header holds no usable public key")
}

// RequestURI is the URI a proof of the request r a server received must
// name: its scheme (https when it came over TLS), host and path.
func RequestURI(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + r.URL.EscapedPath()
}

// sameURI compares a proof's htu with the request's URI without query and
// fragment, after syntax-based normalisation (RFC 3986 §6.2.2: case of
// scheme and host, default ports, empty path).
func sameURI(htu, uri string) bool {
	a, ok1 := normalURI(htu)
	b, ok2 := normalURI(uri)
	return ok1 && ok2 && a == b
}

func normalURI(s string) (string, bool) {
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return "", false
	}
	scheme, host := strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	host = strings.TrimSuffix(host, map[string]string{"https": ":443", "http": ":80"}[scheme])
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	return scheme + "://" + host + path, true
}
