package authtest

import (
	"context"
	"errors"
	"net/http"

	"github.com/golang-jwt/jwt/v5"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/internal/dpop"
)

// DPoP at the token endpoint (https://www.rfc-editor.org/rfc/rfc9449#section-5):
// a token request with a valid proof gets token_type "DPoP", an access
// token whose cnf.jkt is the proof key's thumbprint, and a refresh token
// bound to that key: spending it needs a proof made with the same key. A
// proof that is malformed, replayed, for another request or too old is
// refused with invalid_dpop_proof, and so is the exchange of a code whose
// authorization request named dpop_jkt (§10) without a proof of that key.
// With ProviderConfig.DPoPNonce, a proof
// must carry the provider's nonce: one without it is answered
// use_dpop_nonce with the nonce in a DPoP-Nonce header (§8).

// dpopJKT is the context key of the thumbprint a request's proof proved.
type dpopJKT struct{}

// proofOf checks the DPoP proof of a token request, if any, and returns r
// carrying its key's thumbprint. It answers the request itself (and
// returns nil) when the proof is refused.
func (p *Provider) proofOf(w http.ResponseWriter, r *http.Request) *http.Request {
	proofs := r.Header.Values(auth.DPoPHeader)
	if len(proofs) == 0 {
		return r
	}
	nonce := p.dpopNonce()
	if nonce != "" {
		w.Header().Set(auth.DPoPNonceHeader, nonce)
	}
	if len(proofs) > 1 {
		badRequest("invalid_dpop_proof", "send one DPoP header").write(w)
		return nil
	}
	proven, err := p.dpop.Verify(proofs[0], dpop.Request{Method: r.Method, URI: dpop.RequestURI(r), Nonce: nonce})
	if errors.Is(err, dpop.ErrUseNonce) {
		p.mu.Lock()
		p.nonceAsked++
		p.mu.Unlock()
		badRequest("use_dpop_nonce", "the DPoP proof must carry the nonce of the DPoP-Nonce header").write(w)
		return nil
	}
	if err != nil {
		badRequest("invalid_dpop_proof", err.Error()).write(w)
		return nil
	}
	return r.WithContext(context.WithValue(r.Context(), dpopJKT{}, proven.JKT))
}

// provenJKT is the thumbprint the request's proof proved, or "".
func provenJKT(r *http.Request) string {
	jkt, _ := r.Context().Value(dpopJKT{}).(string)
	return jkt
}

// dpopNonce is the nonce proofs must carry, or "" when none is required.
func (p *Provider) dpopNonce() string {
	if !p.cfg.DPoPNonce {
		return ""
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.nonce == "" {
		p.nonce = randomString(16)
	}
	return p.nonce
}

// RotateDPoPNonce makes the provider require a new DPoP nonce, as servers
// do from time to time: proofs with the old one are answered
// use_dpop_nonce.
func (p *Provider) RotateDPoPNonce() {
	p.mu.Lock()
	p.nonce = randomString(16)
	p.mu.Unlock()
}

// DPoPNonceChallenges counts the token requests answered use_dpop_nonce.
func (p *Provider) DPoPNonceChallenges() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.nonceAsked
}

// refreshKeyRefused reports, for a refresh token bound to a key, whether
// r's proof is missing or made with another key.
func (p *Provider) refreshKeyRefused(r *http.Request, rec *refreshRecord) *oauthErr {
	if rec.jkt == "" || rec.jkt == provenJKT(r) {
		return nil
	}
	return badRequest("invalid_dpop_proof", "the refresh token is bound to a DPoP key; prove possession of it")
}

// bindDPoP makes resp's tokens DPoP-bound to the key of r's proof, if it
// had one: the access token gets cnf.jkt and token_type DPoP, the refresh
// token is bound to the key.
func (p *Provider) bindDPoP(r *http.Request, resp *tokenResponse) {
	jkt := provenJKT(r)
	if jkt == "" {
		return
	}
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(resp.AccessToken, claims); err != nil {
		return // not a JWT of ours: left unbound
	}
	claims["cnf"] = map[string]any{"jkt": jkt}
	bound := p.sign(claims)
	p.mu.Lock()
	defer p.mu.Unlock()
	if s, ok := p.accessSess[resp.AccessToken]; ok {
		delete(p.accessSess, resp.AccessToken)
		p.accessSess[bound] = s
	}
	if c, ok := p.ccTokens[resp.AccessToken]; ok {
		delete(p.ccTokens, resp.AccessToken)
		p.ccTokens[bound] = c
	}
	if rec := p.refresh[resp.RefreshToken]; rec != nil && resp.RefreshToken != "" {
		rec.jkt = jkt
	}
	resp.AccessToken, resp.TokenType = bound, auth.DPoPScheme
}
