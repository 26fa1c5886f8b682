package oauthclient

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/internal/dpop"
)

// TestTokenWithProofWire: a token request carries one DPoP header, a
// proof of a POST to the token endpoint (without query) with no ath,
// signed with the handler's key; a use_dpop_nonce answer with a
// DPoP-Nonce is retried once at once, with a new proof carrying the
// nonce and a new client assertion; later requests carry the nonce from
// the start; the DPoP token comes back bound to the key. A second
// use_dpop_nonce, or one whose nonce is not new, is not retried.
func TestTokenWithProofWire(t *testing.T) {
	key, err := auth.NewDPoPKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	type seen struct{ nonce, jti, assertion string }
	var (
		mu     sync.Mutex
		got    []seen
		always bool // answer use_dpop_nonce to everything
	)
	verifier := dpop.NewVerifier(nil, 0)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proofs := r.Header.Values("DPoP")
		if len(proofs) != 1 {
			t.Errorf("%d DPoP headers", len(proofs))
		}
		tokenURL := "http://" + r.Host + "/token"
		proven, err := verifier.Verify(proofs[0], dpop.Request{Method: "POST", URI: tokenURL, JKT: key.Thumbprint()})
		if err != nil {
			t.Errorf("proof: %v", err)
		}
		c := jwt.MapClaims{}
		_, _, _ = jwt.NewParser().ParseUnverified(proofs[0], c)
		_ = r.ParseForm()
		n, _ := c["nonce"].(string)
		mu.Lock()
		got = append(got, seen{n, c["jti"].(string), r.PostForm.Get("client_assertion")})
		first, refuse := len(got) == 1, always
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if first || refuse {
			w.Header().Set("DPoP-Nonce", "nonce-"+time.Now().Format("150405.000000000"))
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"error":"use_dpop_nonce","error_description":"Authorization server requires nonce in DPoP proof"}`))
			return
		}
		if proven.JKT != key.Thumbprint() {
			t.Errorf("jkt %s", proven.JKT)
		}
		w.Write([]byte(`{"access_token":"at","token_type":"DPoP","expires_in":60,"refresh_token":"rt"}`))
	}))
	defer srv.Close()
	n := 0
	c := New(Config{ClientID: "c", AuthStyle: AuthAssertion, Assertion: func(context.Context, string) (auth.Secret, error) {
		n++
		return auth.NewSecret("assertion-" + string(rune('0'+n))), nil
	}})
	tok, err := c.TokenWithProof(t.Context(), srv.URL+"/token?x=1", url.Values{"grant_type": {"client_credentials"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	if tok.TokenType != "DPoP" || tok.DPoPKey != key {
		t.Errorf("token %v key %v", tok.TokenType, tok.DPoPKey)
	}
	if len(got) != 2 || got[0].nonce != "" || !strings.HasPrefix(got[1].nonce, "nonce-") || got[0].jti == got[1].jti || got[0].assertion == got[1].assertion {
		t.Fatalf("requests %+v: want one without a nonce, then one with it, new proof, new assertion", got)
	}
	if _, err := c.TokenWithProof(t.Context(), srv.URL+"/token", url.Values{"grant_type": {"client_credentials"}}, key); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[2].nonce != got[1].nonce {
		t.Errorf("the next request carries the nonce from the start: %+v", got)
	}
	mu.Lock()
	always = true
	mu.Unlock()
	_, err = c.TokenWithProof(t.Context(), srv.URL+"/token", url.Values{"grant_type": {"client_credentials"}}, key)
	var oe *auth.OAuthError
	if !asOAuth(err, &oe) || oe.Code != "use_dpop_nonce" || len(got) != 5 {
		t.Errorf("a server that keeps asking: %v after %d requests, want use_dpop_nonce after 2", err, len(got)-3)
	}
}

func asOAuth(err error, oe **auth.OAuthError) bool {
	e, ok := err.(*auth.OAuthError)
	*oe = e
	return ok
}

// TestTokenWithProofNonceLearntMeanwhile: a request whose proof carried no
// nonce is answered use_dpop_nonce after a concurrent request (sharing the
// key) already learnt the nonce: it is retried with it all the same.
func TestTokenWithProofNonceLearntMeanwhile(t *testing.T) {
	key, _ := auth.NewDPoPKey(nil)
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		c := jwt.MapClaims{}
		_, _, _ = jwt.NewParser().ParseUnverified(r.Header.Get("DPoP"), c)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("DPoP-Nonce", "n-1")
		if c["nonce"] != "n-1" {
			// Another request of the same key learnt it while this one was on its way.
			key.KeepNonce("http://"+r.Host+"/token", http.Header{"Dpop-Nonce": {"n-1"}})
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"error":"use_dpop_nonce"}`))
			return
		}
		w.Write([]byte(`{"access_token":"at","token_type":"DPoP","expires_in":60}`))
	}))
	defer srv.Close()
	c := New(Config{ClientID: "c"})
	if _, err := c.TokenWithProof(t.Context(), srv.URL+"/token", url.Values{"grant_type": {"client_credentials"}}, key); err != nil || calls.Load() != 2 {
		t.Fatalf("%v after %d requests, want a token after 2", err, calls.Load())
	}
}
