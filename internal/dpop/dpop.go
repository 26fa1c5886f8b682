// Package dpop makes the proofs of OAuth 2.0 Demonstrating Proof of
// Possession (DPoP, RFC 9449 §4): a JWT signed with the client's key,
// carrying the public key in its header, bound to one HTTP request (htm,
// htu), to the access token it accompanies (ath) and to the server's
// nonce when one was asked for. A proof is made per request.
package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/url"
	"time"

	"github.com/authkit-go/authkit/internal/jws"
)

// Prover makes proofs with one key. It is safe for concurrent use when its
// key is.
type Prover struct {
	key    crypto.Signer
	signer *jws.Signer
	jkt    string
}

// New returns a prover of key (nil: a new ECDSA P-256 key, for ES256, the
// algorithm every DPoP server supports).
func New(key crypto.Signer) (*Prover, error) {
	if key == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("dpop: %w", err)
		}
		key = k
	}
	s, err := jws.NewSignerWithJWK(key, "", "dpop+jwt")
	if err != nil {
		return nil, fmt.Errorf("dpop: %w", err)
	}
	jkt, err := jws.Thumbprint(key.Public())
	if err != nil {
		return nil, fmt.Errorf("dpop: %w", err)
	}
	return &Prover{key: key, signer: s, jkt: jkt}, nil
}

// Signer is the prover's key.
func (p *Prover) Signer() crypto.Signer { return p.key }

// Thumbprint is the key's JWK thumbprint (RFC 7638): the jkt a server
// binds its tokens to (cnf.jkt, dpop_jkt).
func (p *Prover) Thumbprint() string { return p.jkt }

// claims are a proof's claims (RFC 9449 §4.2).
type claims struct {
	Jti   string `json:"jti"`
	Htm   string `json:"htm"`
	Htu   string `json:"htu"`
	Iat   int64  `json:"iat"`
	Ath   string `json:"ath,omitempty"`
	Nonce string `json:"nonce,omitempty"`
}

// Proof returns the proof for a request of method to uri at now: with the
// hash of accessToken when the request carries one (empty: a token
// request), and nonce when the server asked for one.
func (p *Prover) Proof(method, uri, accessToken, nonce string, now time.Time) (string, error) {
	htu, err := TargetURI(uri)
	if err != nil {
		return "", err
	}
	c := claims{Jti: rand.Text(), Htm: method, Htu: htu, Iat: now.Unix(), Nonce: nonce}
	if accessToken != "" {
		c.Ath = AccessTokenHash(accessToken)
	}
	return p.signer.Sign(c)
}

// TargetURI is uri as a proof names it: without its query and fragment
// (RFC 9449 §4.2).
func TargetURI(uri string) (string, error) {
	u, err := url.Parse(uri)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return "", fmt.Errorf("dpop: %q is not an absolute URI", uri)
	}
	u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment, u.User = "", false, "", "", nil
	return u.String(), nil
}

// AccessTokenHash is the ath of a proof: base64url(SHA-256(token)).
func AccessTokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
