// Package jws signs compact JSON Web Signatures (RFC 7515) with any
// crypto.Signer — a key in memory, a KMS, an HSM or PKCS#11 token — for the
// assertions of private_key_jwt client authentication and the JWT bearer
// grant (RFC 7523). It signs only; verification is golang-jwt's.
package jws

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	_ "crypto/sha512" // RS384/512, ES384/512 hash with crypto.SHA384 and SHA512
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
)

// Signer signs with one key and algorithm; it is safe for concurrent use
// when its key is.
type Signer struct {
	key    crypto.Signer
	alg    string
	kid    string
	header string // base64url of the protected header, made once
	hash   crypto.Hash
	opts   crypto.SignerOpts
	size   int // ECDSA: bytes per coordinate of the signature
}

// Algorithms lists the algorithms a Signer signs with.
var Algorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// NewSigner returns a signer of key with alg ("" chooses by the key: RS256
// for RSA, ES256/ES384/ES512 by the curve, EdDSA for Ed25519) and kid (""
// means the key's RFC 7638 thumbprint). typ, when set, is the header's typ.
func NewSigner(key crypto.Signer, alg, kid, typ string) (*Signer, error) {
	if key == nil {
		return nil, errors.New("jws: no key")
	}
	pub := key.Public()
	if alg == "" {
		alg = DefaultAlgorithm(pub)
		if alg == "" {
			return nil, fmt.Errorf("jws: unsupported key type %T", pub)
		}
	}
	s := &Signer{key: key, alg: alg}
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("jws: %s needs an RSA key, not %T", alg, pub)
		}
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("jws: an RSA key of %d bits is too small; use 2048 or more", k.N.BitLen())
		}
		s.hash = map[string]crypto.Hash{"256": crypto.SHA256, "384": crypto.SHA384, "512": crypto.SHA512}[alg[2:]]
		s.opts = s.hash
		if alg[0] == 'P' {
			s.opts = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: s.hash}
		}
	case "ES256", "ES384", "ES512":
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok || ECDSAAlgorithm(k.Curve) != alg {
			return nil, fmt.Errorf("jws: %s needs an ECDSA key on its curve (RFC 7518 §3.4)", alg)
		}
		s.hash = map[string]crypto.Hash{"ES256": crypto.SHA256, "ES384": crypto.SHA384, "ES512": crypto.SHA512}[alg]
		s.opts = s.hash
		s.size = (k.Curve.Params().BitSize + 7) / 8
	case "EdDSA":
		if _, ok := pub.(ed25519.PublicKey); !ok {
			return nil, fmt.Errorf("jws: EdDSA needs an Ed25519 key, not %T", pub)
		}
		s.opts = crypto.Hash(0)
	default:
		return nil, fmt.Errorf("jws: unsupported algorithm %q (supported: %v)", alg, Algorithms)
	}
	if kid == "" {
		var err error
		if kid, err = Thumbprint(pub); err != nil {
			return nil, err
		}
	}
	s.kid = kid
	h := map[string]any{"alg": alg, "kid": kid}
	if typ != "" {
		h["typ"] = typ
	}
	s.setHeader(h)
	return s, nil
}

// NewSignerWithJWK is NewSigner for a JWS that carries its public key in
// the header ("jwk", without "kid"), as a DPoP proof does (RFC 9449 §4.2).
func NewSignerWithJWK(key crypto.Signer, alg, typ string) (*Signer, error) {
	s, err := NewSigner(key, alg, "", typ)
	if err != nil {
		return nil, err
	}
	pub, err := members(key.Public())
	if err != nil {
		return nil, err
	}
	h := map[string]any{"alg": s.alg, "jwk": pub}
	if typ != "" {
		h["typ"] = typ
	}
	s.setHeader(h)
	return s, nil
}

func (s *Signer) setHeader(h map[string]any) {
	b, _ := json.Marshal(h)
	s.header = base64.RawURLEncoding.EncodeToString(b)
}

// DefaultAlgorithm is the algorithm NewSigner chooses for pub, or "".
func DefaultAlgorithm(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return "RS256"
	case *ecdsa.PublicKey:
		return ECDSAAlgorithm(k.Curve)
	case ed25519.PublicKey:
		return "EdDSA"
	}
	return ""
}

// ECDSAAlgorithm is the one JWS algorithm of curve
// (https://www.rfc-editor.org/rfc/rfc7518#section-3.4), "" for others.
func ECDSAAlgorithm(curve elliptic.Curve) string {
	switch curve {
	case elliptic.P256():
		return "ES256"
	case elliptic.P384():
		return "ES384"
	case elliptic.P521():
		return "ES512"
	}
	return ""
}

// Algorithm is the signer's alg.
func (s *Signer) Algorithm() string { return s.alg }

// KeyID is the signer's kid.
func (s *Signer) KeyID() string { return s.kid }

// Public is the signer's public key.
func (s *Signer) Public() crypto.PublicKey { return s.key.Public() }

// Sign returns the compact serialization of claims (marshalled to JSON).
func (s *Signer) Sign(claims any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("jws: claims: %w", err)
	}
	enc := base64.RawURLEncoding
	buf := make([]byte, 0, len(s.header)+1+enc.EncodedLen(len(payload))+1+enc.EncodedLen(512))
	buf = append(buf, s.header...)
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, payload)
	signed := buf
	msg := signed
	if s.hash != 0 {
		h := s.hash.New()
		h.Write(signed)
		msg = h.Sum(nil)
	}
	sig, err := s.key.Sign(rand.Reader, msg, s.opts)
	if err != nil {
		return "", fmt.Errorf("jws: sign with %s: %w", s.alg, err)
	}
	if s.size > 0 {
		if sig, err = rawECDSA(sig, s.size); err != nil {
			return "", err
		}
	}
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, sig)
	return string(buf), nil
}

// rawECDSA turns an ASN.1 ECDSA signature, as crypto.Signer returns it,
// into JWS's fixed-size r || s (RFC 7518 §3.4).
func rawECDSA(der []byte, size int) ([]byte, error) {
	var v struct{ R, S *big.Int }
	if rest, err := asn1.Unmarshal(der, &v); err != nil || len(rest) > 0 ||
		v.R.Sign() <= 0 || v.S.Sign() <= 0 || v.R.BitLen() > 8*size || v.S.BitLen() > 8*size {
		// A KMS or HSM signer answering nonsense must not panic FillBytes.
		return nil, errors.New("jws: the signer returned a malformed ECDSA signature")
	}
	out := make([]byte, 2*size)
	v.R.FillBytes(out[:size])
	v.S.FillBytes(out[size:])
	return out, nil
}

// JWK returns pub as a public JSON Web Key (RFC 7517) with kid and alg set.
func JWK(pub crypto.PublicKey, kid, alg string) (map[string]string, error) {
	m, err := members(pub)
	if err != nil {
		return nil, err
	}
	if kid != "" {
		m["kid"] = kid
	}
	if alg != "" {
		m["alg"] = alg
	}
	m["use"] = "sig"
	return m, nil
}

// members are the required members of pub's JWK (RFC 7638 §3.2).
func members(pub crypto.PublicKey) (map[string]string, error) {
	b64 := base64.RawURLEncoding.EncodeToString
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return map[string]string{"kty": "RSA", "n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())}, nil
	case *ecdsa.PublicKey:
		ek, err := k.ECDH() // validates the point
		if err != nil {
			return nil, fmt.Errorf("jws: %w", err)
		}
		raw := ek.Bytes() // 0x04 || x || y
		n := (len(raw) - 1) / 2
		return map[string]string{"kty": "EC", "crv": k.Curve.Params().Name, "x": b64(raw[1 : 1+n]), "y": b64(raw[1+n:])}, nil
	case ed25519.PublicKey:
		return map[string]string{"kty": "OKP", "crv": "Ed25519", "x": b64(k)}, nil
	}
	return nil, fmt.Errorf("jws: unsupported key type %T", pub)
}

// Thumbprint is pub's JWK thumbprint (RFC 7638, SHA-256, base64url).
func Thumbprint(pub crypto.PublicKey) (string, error) {
	m, err := members(pub)
	if err != nil {
		return "", err
	}
	// encoding/json sorts map keys: the canonical form of §3.3.
	b, _ := json.Marshal(m)
	sum := sha256.Sum256(b)
	return base64.RawURLEncoding.EncodeToString(sum[:]), nil
}
