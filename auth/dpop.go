package auth

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/authkit-go/authkit/internal/dpop"
)

// DPoP names, as RFC 9449 spells them.
const (
	// DPoPScheme is the token type and the Authorization scheme of a
	// DPoP-bound access token (https://www.rfc-editor.org/rfc/rfc9449#section-7.1).
	DPoPScheme = "DPoP"
	// DPoPHeader is the HTTP header that carries a proof; gRPC metadata
	// carries it under its lowercase form, "dpop".
	DPoPHeader = "DPoP"
	// DPoPNonceHeader is the header in which a server hands out the nonce
	// its proofs must carry (https://www.rfc-editor.org/rfc/rfc9449#section-8).
	DPoPNonceHeader = "DPoP-Nonce"
)

// DPoPKey is the key of a client that proves possession of its tokens with
// DPoP (https://www.rfc-editor.org/rfc/rfc9449): the tokens a provider
// issues to a request carrying a proof made with it are bound to it (the
// access token's cnf.jkt), and every request that sends them carries a new
// proof made with it. A token keeps its key in [Token.DPoPKey], and the
// stores keep the key with the token (encrypted by [EncryptedStore] like
// the token), so that a stored DPoP-bound refresh token is usable after a
// restart.
//
// A key also remembers the nonces servers hand out to requests proved
// with it (https://www.rfc-editor.org/rfc/rfc9449#section-8), by origin.
//
// A DPoPKey never prints its private key: it prints as its thumbprint.
// It is safe for concurrent use when its signer is.
type DPoPKey struct {
	prover *dpop.Prover // nil for a key known by its thumbprint only
	jkt    string
	pkcs8  Secret // the private key as the stores keep it; empty when it cannot be exported
	nonces dpop.Nonces
}

// NewDPoPKey returns the DPoP key of signer: an ECDSA key (ES256 on P-256,
// the algorithm every DPoP server supports), an RSA key of 2048 bits or
// more (RS256) or an Ed25519 key (EdDSA). A nil signer means a new P-256
// key. A key that x509.MarshalPKCS8PrivateKey cannot encode (one in a KMS
// or an HSM) is not written to a store: a stored login bound to it is used
// again by a handler given the same key.
func NewDPoPKey(signer crypto.Signer) (*DPoPKey, error) {
	p, err := dpop.New(signer)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	k := &DPoPKey{prover: p, jkt: p.Thumbprint()}
	if signer == nil {
		signer = p.Signer()
	}
	if der, err := x509.MarshalPKCS8PrivateKey(signer); err == nil {
		k.pkcs8 = NewSecret(base64.RawStdEncoding.EncodeToString(der))
	}
	return k, nil
}

// parseStoredDPoPKey is the key a store kept: from its private key when it
// has one, else a key known by its thumbprint only.
func parseStoredDPoPKey(pkcs8, jkt string) (*DPoPKey, error) {
	if pkcs8 == "" {
		if jkt == "" {
			return nil, nil
		}
		return &DPoPKey{jkt: jkt}, nil
	}
	der, err := base64.RawStdEncoding.DecodeString(pkcs8)
	if err != nil {
		return nil, fmt.Errorf("%w: DPoP key is not base64", ErrMalformedToken)
	}
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("%w: DPoP key is not a PKCS #8 private key", ErrMalformedToken)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: DPoP key of type %T cannot sign", ErrMalformedToken, key)
	}
	k, err := NewDPoPKey(signer)
	if err != nil {
		return nil, fmt.Errorf("%w: DPoP key: %v", ErrMalformedToken, err)
	}
	if jkt != "" && k.jkt != jkt {
		return nil, fmt.Errorf("%w: DPoP key does not match its thumbprint", ErrMalformedToken)
	}
	return k, nil
}

// Held reports whether the key can make proofs: false for a key a store
// knew by its thumbprint only (see NewDPoPKey).
func (k *DPoPKey) Held() bool { return k.prover != nil }

// Thumbprint is the key's JWK thumbprint (RFC 7638): the jkt a provider
// binds tokens to (cnf.jkt) and the dpop_jkt of an authorization request.
func (k *DPoPKey) Thumbprint() string { return k.jkt }

// Proof returns a new proof (https://www.rfc-editor.org/rfc/rfc9449#section-4.2)
// for a request of method to uri at now: with the hash of accessToken
// (ath) when the request carries one, and with nonce when the server asked
// for one. A key known only by its thumbprint (see NewDPoPKey) makes none.
func (k *DPoPKey) Proof(method, uri, accessToken, nonce string, now time.Time) (string, error) {
	if k.prover == nil {
		return "", fmt.Errorf("%w: the token is bound to DPoP key %s, which is not held here", ErrLoginRequired, k.jkt)
	}
	return k.prover.Proof(method, uri, accessToken, nonce, now)
}

// Nonce returns the DPoP nonce the origin of uri handed out last to a
// request proved with k, or "".
func (k *DPoPKey) Nonce(uri string) string { return k.nonces.Get(uri) }

// KeepNonce records the DPoP-Nonce header of an answer from the origin of
// uri, and reports whether it is new (a request refused for want of it is
// worth one more try).
func (k *DPoPKey) KeepNonce(uri string, h http.Header) bool { return k.nonces.Keep(uri, h) }

// String is "DPoPKey(<thumbprint>)": never the private key.
func (k *DPoPKey) String() string { return "DPoPKey(" + k.jkt + ")" }

// Format prints String under every verb.
func (k *DPoPKey) Format(f fmt.State, _ rune) { fmt.Fprint(f, k.String()) }

// LogValue logs String.
func (k *DPoPKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

// RequestAuthenticator is implemented by handlers whose credentials may be
// bound to one request: a DPoP-bound token is sent with a new proof for
// every request (https://www.rfc-editor.org/rfc/rfc9449#section-7). The
// session and grpcauth use it, when a handler implements it, instead of
// the getters of [AuthenticationHandler]; for a bearer token it returns
// what the getters return, at the same cost.
type RequestAuthenticator interface {
	// RequestHeaders returns the headers of svc (the hub or the access
	// manager) for one request of method to target: with a DPoP-bound
	// token, "Authorization: DPoP <token>" and a DPoP header with a new
	// proof, carrying nonce when it is not empty. The map may be shared:
	// the caller never modifies it.
	RequestHeaders(ctx context.Context, svc Service, method string, target *url.URL, nonce string) (http.Header, error)
	// RequestMetadata returns the message service's metadata for one RPC:
	// with a DPoP-bound token, "authorization: DPoP <token>" and "dpop", a
	// new proof of a POST to https://<authority>/<service>/<method> (see
	// [RPCTargetURI]), carrying nonce when it is not empty. audience is
	// what gRPC hands to per-RPC credentials (https://<authority>/<service>)
	// and fullMethod the RPC's method (/<service>/<method>). The map may be
	// shared: the caller never modifies it.
	RequestMetadata(ctx context.Context, audience, fullMethod, nonce string) (map[string]string, error)
}

// RPCTargetURI is the URI a DPoP proof of an RPC names (its htu): the
// origin of audience (https://<authority>, as gRPC spells it whatever the
// transport) followed by fullMethod. RFC 9449 defines proofs for HTTP
// requests; a gRPC call is an HTTP/2 POST to that path, so authkit's
// client and server name it so (htm "POST").
func RPCTargetURI(audience, fullMethod string) string {
	if i := strings.Index(audience, "://"); i >= 0 {
		if j := strings.IndexByte(audience[i+3:], '/'); j >= 0 {
			audience = audience[:i+3+j]
		}
	}
	return audience + fullMethod
}

// RequestHeaders returns svc's headers for one request; see
// [RequestAuthenticator].
func (e *Engine) RequestHeaders(ctx context.Context, svc Service, method string, target *url.URL, nonce string) (http.Header, error) {
	c, err := e.Credentials(ctx)
	if err != nil {
		return nil, err
	}
	h := c.Hub()
	if svc == ServiceAccessManager {
		h = c.AccessManager()
	}
	if !dpopBound(c.Token) {
		return h, nil
	}
	if target == nil {
		return nil, fmt.Errorf("%w: a DPoP proof needs the request's URL", ErrInvalidConfig)
	}
	proof, err := c.Token.DPoPKey.Proof(method, target.String(), c.Token.AccessToken.Reveal(), nonce, e.clock.Now())
	if err != nil {
		return nil, err
	}
	out := make(http.Header, len(h)+1)
	for k, v := range h {
		out[k] = v
	}
	out[http.CanonicalHeaderKey(DPoPHeader)] = []string{proof}
	return out, nil
}

// RequestMetadata returns the message service's metadata for one RPC; see
// [RequestAuthenticator].
func (e *Engine) RequestMetadata(ctx context.Context, audience, fullMethod, nonce string) (map[string]string, error) {
	c, err := e.Credentials(ctx)
	if err != nil {
		return nil, err
	}
	md := c.MessageService()
	if !dpopBound(c.Token) {
		return md, nil
	}
	proof, err := c.Token.DPoPKey.Proof(http.MethodPost, RPCTargetURI(audience, fullMethod), c.Token.AccessToken.Reveal(), nonce, e.clock.Now())
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(md)+1)
	for k, v := range md {
		out[k] = v
	}
	out[strings.ToLower(DPoPHeader)] = proof
	return out, nil
}

// dpopBound reports whether tok is sent as a DPoP-bound token: it has a
// key and the provider called it DPoP. A provider that ignored the proof
// and issued a bearer token gets it back as one (RFC 9449 §5).
func dpopBound(tok *Token) bool {
	return tok.DPoPKey != nil && strings.EqualFold(tok.TokenType, DPoPScheme)
}

// dpopWire is w for a DPoP-bound token: the standard "Bearer " prefix
// becomes "DPoP "; a prefix of the platform's own is kept.
func dpopWire(w *Wire) *Wire {
	d := *w
	for _, f := range []*Field{&d.Hub, &d.AccessManager, &d.MessageService} {
		if strings.EqualFold(f.Prefix, DefaultBearerPrefix) {
			f.Prefix = DPoPScheme + " "
		}
	}
	return &d
}
