package session_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/authtest"
	"github.com/authkit-go/authkit/authtest/platform"
	"github.com/authkit-go/authkit/grpcauth"
	"github.com/authkit-go/authkit/handlers"
	"github.com/authkit-go/authkit/internal/dpop"
	"github.com/authkit-go/authkit/session"
)

// recorder keeps the headers of every request the session sent.
type recorder struct {
	mu   sync.Mutex
	sent []*http.Request
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.sent = append(r.sent, req.Clone(context.Background()))
	r.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

func (r *recorder) last() *http.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sent[len(r.sent)-1]
}

// dpopFixture is a provider and a platform that both demand DPoP nonces,
// the platform accepting DPoP-bound tokens only, and a password handler
// with DPoP behind a session.
type dpopFixture struct {
	prov *authtest.Provider
	plat *platform.Platform
	h    *handlers.Password
	s    *session.Session
	rec  *recorder
}

func newDPoPFixture(t *testing.T, store auth.Store) *dpopFixture {
	t.Helper()
	f := &dpopFixture{rec: &recorder{}}
	f.prov = authtest.NewProvider(authtest.ProviderConfig{
		Audience:  platform.DefaultAudience,
		Clients:   []authtest.Client{{ID: "cli"}},
		Users:     []authtest.User{{Username: "ada", Password: "pw"}},
		DPoPNonce: true, AlwaysIssueRefreshToken: true,
	})
	t.Cleanup(f.prov.Close)
	var err error
	f.plat, err = platform.New(platform.Config{Provider: f.prov, RequireDPoP: true, DPoPNonce: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.plat.Close)
	f.h = newDPoPPassword(t, f.prov, store)
	f.s, err = session.New(f.h, session.Config{HubURL: f.plat.HubURL(), AccessManagerURL: f.plat.AccessManagerURL(), Transport: f.rec})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.s.Close() })
	return f
}

func newDPoPPassword(t *testing.T, prov *authtest.Provider, store auth.Store) *handlers.Password {
	t.Helper()
	h, err := handlers.NewPassword(handlers.PasswordConfig{
		OAuthConfig: handlers.OAuthConfig{Endpoints: handlers.Endpoints{TokenURL: prov.TokenURL()}, ClientID: "cli", DPoP: true, Store: store},
		Username:    "ada", Password: auth.NewSecret("pw"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func (f *dpopFixture) get(t *testing.T, url string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	resp, err := f.s.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return resp.StatusCode
}

// proofClaims verifies a proof with the key in its own header and returns
// its header and claims.
func proofClaims(t *testing.T, proof string) (map[string]any, jwt.MapClaims) {
	t.Helper()
	tok, err := jwt.Parse(proof, func(tok *jwt.Token) (any, error) {
		raw, _ := json.Marshal(tok.Header["jwk"])
		var j struct{ Kty, Crv, X, Y, D string }
		if err := json.Unmarshal(raw, &j); err != nil || j.Kty != "EC" || j.Crv != "P-256" || j.D != "" {
			t.Fatalf("proof jwk %s", raw)
		}
		x, _ := base64.RawURLEncoding.DecodeString(j.X)
		y, _ := base64.RawURLEncoding.DecodeString(j.Y)
		return ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
	}, jwt.WithValidMethods([]string{"ES256"}), jwt.WithoutClaimsValidation())
	if err != nil {
		t.Fatalf("proof does not verify with its own key: %v", err)
	}
	return tok.Header, tok.Claims.(jwt.MapClaims)
}

func ath(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// TestDPoPSession: a DPoP handler behind a session, against a provider
// and a platform that both demand nonces. The token request is answered
// use_dpop_nonce once and retried with the nonce; the token is DPoP-bound;
// every request carries "Authorization: DPoP <token>" and a new proof
// naming its method and URL, the token's hash and the resource's nonce;
// the resource's use_dpop_nonce is replayed once, and again when the
// resource changes its nonce; the token is fetched once.
func TestDPoPSession(t *testing.T) {
	f := newDPoPFixture(t, nil)
	for i := range 3 {
		if code := f.get(t, f.plat.HubURL()+platform.PathMe+"?q=1"); code != http.StatusOK {
			t.Fatalf("request %d: %d", i, code)
		}
	}
	if n := f.prov.DPoPNonceChallenges(); n != 1 {
		t.Errorf("the provider asked for its nonce %d times, want 1 (then the handler knows it)", n)
	}
	if n := f.plat.DPoPNonceChallenges(); n != 1 {
		t.Errorf("the hub asked for its nonce %d times, want 1", n)
	}
	tok, err := f.h.Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if tok.TokenType != "DPoP" || tok.DPoPKey == nil {
		t.Fatalf("token type %q, key %v", tok.TokenType, tok.DPoPKey)
	}
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(tok.AccessToken.Reveal(), claims); err != nil {
		t.Fatal(err)
	}
	if cnf, _ := claims["cnf"].(map[string]any); cnf["jkt"] != tok.DPoPKey.Thumbprint() {
		t.Errorf("cnf %v, key %s", claims["cnf"], tok.DPoPKey.Thumbprint())
	}

	req := f.rec.last()
	if got := req.Header.Get("Authorization"); got != "DPoP "+tok.AccessToken.Reveal() {
		t.Errorf("Authorization %.20q…", got)
	}
	hdr, c := proofClaims(t, req.Header.Get("DPoP"))
	if hdr["typ"] != "dpop+jwt" || hdr["alg"] != "ES256" {
		t.Errorf("proof header %v", hdr)
	}
	if c["htm"] != "GET" || c["htu"] != f.plat.HubURL()+platform.PathMe || c["ath"] != ath(tok.AccessToken.Reveal()) || c["nonce"] == nil || c["jti"] == nil {
		t.Errorf("proof claims %v", c)
	}

	// The access manager has a nonce of its own kept apart: one more challenge.
	if code := f.get(t, f.plat.AccessManagerURL()+platform.PathMe); code != http.StatusOK {
		t.Fatalf("access manager: %d", code)
	}
	f.plat.RotateDPoPNonce()
	if code := f.get(t, f.plat.HubURL()+platform.PathMe); code != http.StatusOK {
		t.Fatalf("after the nonce changed: %d", code)
	}
	if n := f.plat.DPoPNonceChallenges(); n != 3 {
		t.Errorf("challenges %d, want 3 (hub, access manager, hub after rotation)", n)
	}
	if st := f.s.Stats(); st.Reauthentications != 0 {
		t.Errorf("a nonce challenge invalidated the token: %+v", st)
	}
	if n := f.h.Stats().Fetches; n != 1 {
		t.Errorf("fetches %d, want 1", n)
	}

	// A new nonce and a revoked token at once: the replay with the nonce is
	// refused for the token, which goes the 401 way: a new token, one more
	// replay, and the caller sees 200.
	f.plat.RotateDPoPNonce()
	f.plat.RejectNext(platform.ServiceHub, 1)
	if code := f.get(t, f.plat.HubURL()+platform.PathMe); code != http.StatusOK {
		t.Fatalf("a nonce challenge, then a rejected token: %d", code)
	}
	if st, n := f.s.Stats(), f.h.Stats().Fetches; st.Reauthentications != 1 || n != 2 {
		t.Errorf("reauthentications %d, fetches %d; want 1 and 2", st.Reauthentications, n)
	}
}

// TestDPoPStolenTokenAndReplayedProof: what a thief copies from a log or
// a proxy is useless at the platform: the token without the key (as
// Bearer, or with a proof of the thief's own key) and a captured request
// replayed as it was (its proof's jti is spent) are all refused, over
// HTTP and gRPC.
func TestDPoPStolenTokenAndReplayedProof(t *testing.T) {
	f := newDPoPFixture(t, nil)
	if code := f.get(t, f.plat.HubURL()+platform.PathMe); code != http.StatusOK {
		t.Fatal(code)
	}
	captured := f.rec.last()
	tok, _ := f.h.Token(t.Context())
	thief, err := auth.NewDPoPKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	nonce := captured.Header.Get("DPoP") // any proof: replaced below where needed
	_, c := proofClaims(t, nonce)
	n, _ := c["nonce"].(string)
	url := f.plat.HubURL() + platform.PathMe
	ownProof, err := thief.Proof(http.MethodGet, url, tok.AccessToken.Reveal(), n, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		hdr  http.Header
	}{
		{"replayed request", captured.Header.Clone()},
		{"token as Bearer", http.Header{"Authorization": {"Bearer " + tok.AccessToken.Reveal()}}},
		{"token with the thief's proof", http.Header{"Authorization": {"DPoP " + tok.AccessToken.Reveal()}, "Dpop": {ownProof}}},
		{"token without a proof", http.Header{"Authorization": {"DPoP " + tok.AccessToken.Reveal()}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			req.Header = tt.hdr
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized || strings.Contains(resp.Header.Get("WWW-Authenticate"), "use_dpop_nonce") {
				t.Errorf("status %d %q, want 401 for the credentials, not for the nonce", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
			}
		})
	}

	// gRPC: the handler's own calls pass; the token without the key does not.
	creds, err := grpcauth.NewCredentials(f.h, grpcauth.ClientConfig{AllowInsecureLoopback: true})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(f.plat.MessageServiceAddr(), creds.DialOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if me, err := platform.WhoAmI(t.Context(), cc); err != nil || me.Subject != "ada" {
		t.Fatalf("WhoAmI with DPoP: %v %v", me, err)
	}
	plain, err := grpc.NewClient(f.plat.MessageServiceAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	for _, md := range []metadata.MD{
		metadata.Pairs("authorization", "Bearer "+tok.AccessToken.Reveal()),
		metadata.Pairs("authorization", "DPoP "+tok.AccessToken.Reveal(), "dpop", ownProof),
	} {
		_, err := platform.WhoAmI(metadata.NewOutgoingContext(t.Context(), md), plain)
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("stolen token over gRPC: %v", err)
		}
	}
}

// TestDPoPRestartWithStoredRefreshToken: the key is kept with the login,
// sealed by an EncryptedStore: a new handler (a restarted program, with a
// new key of its own) refreshes the stored DPoP-bound refresh token with
// the stored key, and the provider, which binds it to that key, accepts:
// no new password login.
func TestDPoPRestartWithStoredRefreshToken(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tokens")
	file, err := auth.NewFileStore(auth.FileStoreConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	key := auth.EncryptionKey{ID: "k1", Key: auth.NewSecret(string(raw))}
	store, err := auth.NewEncryptedStore(auth.EncryptedStoreConfig{Store: file, Keys: []auth.EncryptionKey{key}})
	if err != nil {
		t.Fatal(err)
	}
	f := newDPoPFixture(t, store)
	if code := f.get(t, f.plat.HubURL()+platform.PathMe); code != http.StatusOK {
		t.Fatal(code)
	}
	first, _ := f.h.Token(t.Context())
	f.h.Close()

	h2 := newDPoPPassword(t, f.prov, store)
	if err := h2.Authenticate(t.Context()); err != nil { // the stored login, as it is
		t.Fatal(err)
	}
	if g := f.prov.Counts().Grants; g[authtest.GrantRefreshToken] != 0 || g[authtest.GrantPassword] != 2 {
		t.Fatalf("grants %v before the refresh", g)
	}
	h2.Invalidate(auth.ServiceHub, "") // the access token was rejected: spend the stored refresh token
	s2, err := session.New(h2, session.Config{HubURL: f.plat.HubURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	req, _ := http.NewRequest(http.MethodGet, f.plat.HubURL()+platform.PathMe, nil)
	resp, err := s2.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("after the restart: %d", resp.StatusCode)
	}
	second, _ := h2.Token(t.Context())
	if second.AccessToken.Equal(first.AccessToken) || second.DPoPKey.Thumbprint() != first.DPoPKey.Thumbprint() {
		t.Errorf("after the restart: new token %v, key %s (was %s)", !second.AccessToken.Equal(first.AccessToken), second.DPoPKey, first.DPoPKey)
	}
	// Each was asked for the nonce once (the restarted handler did not
	// know it): two requests each. A refresh with another key than the
	// stored one is refused (invalid_dpop_proof), and a password login
	// would follow.
	if g := f.prov.Counts().Grants; g[authtest.GrantPassword] != 2 || g[authtest.GrantRefreshToken] != 2 || f.prov.DPoPNonceChallenges() != 2 {
		t.Errorf("grants %v, nonce challenges %d: want one password login and one refresh, each asked for the nonce once", g, f.prov.DPoPNonceChallenges())
	}
	// The store's files hold the key sealed, never in clear.
	entries, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(entries) == 0 {
		t.Fatal("nothing stored")
	}
	for _, name := range entries {
		if b, _ := os.ReadFile(name); strings.Contains(string(b), "dpop_key") || strings.Contains(string(b), "PRIVATE") {
			t.Errorf("%s holds the DPoP key in clear", name)
		}
	}
}

// TestBearerHandlerRefusesDPoPTokens: a handler without DPoP refuses a
// token its provider calls DPoP (it could not prove possession).
func TestBearerHandlerRefusesDPoPTokens(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"access_token":"tok","token_type":"DPoP","expires_in":60}`))
	}))
	defer srv.Close()
	h, err := handlers.NewClientCredentials(handlers.ClientCredentialsConfig{OAuthConfig: handlers.OAuthConfig{
		Endpoints: handlers.Endpoints{TokenURL: srv.URL}, ClientID: "c", ClientSecret: auth.NewSecret("s"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.Authenticate(t.Context()); !errors.Is(err, auth.ErrUnsupportedTokenType) {
		t.Fatalf("Authenticate: %v", err)
	}
}

// kmsKey is a signer whose private key cannot be exported, as a key in a
// KMS or an HSM.
type kmsKey struct{ k *ecdsa.PrivateKey }

func (s kmsKey) Public() crypto.PublicKey { return s.k.Public() }
func (s kmsKey) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return s.k.Sign(r, digest, opts)
}

// TestDPoPKeyOutsideTheStore: a key the store cannot keep (a KMS key) is
// stored by its thumbprint; a restarted handler given the same key
// serves and refreshes the stored login with it; one given another key
// neither serves the stored token (it could not prove possession) nor
// spends its bound refresh token: it logs in anew.
func TestDPoPKeyOutsideTheStore(t *testing.T) {
	store, err := auth.NewFileStore(auth.FileStoreConfig{Dir: filepath.Join(t.TempDir(), "tokens")})
	if err != nil {
		t.Fatal(err)
	}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f := newDPoPFixture(t, nil)
	handler := func(key crypto.Signer) *handlers.Password {
		h, err := handlers.NewPassword(handlers.PasswordConfig{
			OAuthConfig: handlers.OAuthConfig{Endpoints: handlers.Endpoints{TokenURL: f.prov.TokenURL()}, ClientID: "cli", DPoPKey: mustKey(t, key), Store: store},
			Username:    "ada", Password: auth.NewSecret("pw"),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		return h
	}
	refresh := func(h *handlers.Password, sameKey bool) *auth.Token {
		t.Helper()
		if err := h.Authenticate(t.Context()); err != nil {
			t.Fatal(err)
		}
		if sameKey {
			h.Invalidate(auth.ServiceHub, "") // a refresh with the stored key
		} // else Authenticate must not have served a token it cannot prove

		hdr, err := h.RequestHeaders(t.Context(), auth.ServiceHub, http.MethodGet, mustURL(f.plat.HubURL()+platform.PathMe), "")
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Get("DPoP") == "" || !strings.HasPrefix(hdr.Get("Authorization"), "DPoP ") {
			t.Fatalf("headers %v", hdr)
		}
		tok, _ := h.Token(t.Context())
		return tok
	}
	grants := func() (int, int) {
		g := f.prov.Counts().Grants
		return g[authtest.GrantPassword], g[authtest.GrantRefreshToken]
	}
	first := handler(kmsKey{k})
	if err := first.Authenticate(t.Context()); err != nil {
		t.Fatal(err)
	}
	first.Close()
	pw0, _ := grants()

	tok := refresh(handler(kmsKey{k}), true)
	if pw, rt := grants(); pw != pw0 || rt == 0 || tok.DPoPKey.Thumbprint() != mustKey(t, kmsKey{k}).Thumbprint() {
		t.Errorf("same key: password %d→%d, refreshes %d, key %s", pw0, pw, rt, tok.DPoPKey)
	}
	_, rt0 := grants()
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tok = refresh(handler(kmsKey{other}), false)
	if pw, rt := grants(); pw == pw0 || rt != rt0 || tok.DPoPKey.Thumbprint() != mustKey(t, kmsKey{other}).Thumbprint() {
		t.Errorf("another key: password %d→%d, refreshes %d→%d (the bound refresh token cannot be spent), key %s", pw0, pw, rt0, rt, tok.DPoPKey)
	}
}

func mustKey(t *testing.T, s crypto.Signer) *auth.DPoPKey {
	k, err := auth.NewDPoPKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// TestSelectedHandlerBehindASession: the handler handlers.Select returns
// passes on what the session needs besides the getters — Invalidate (a
// 401 is answered with a new token) and RequestHeaders (a DPoP-bound token
// goes with its proof).
func TestSelectedHandlerBehindASession(t *testing.T) {
	prov := authtest.NewProvider(authtest.ProviderConfig{
		Audience: platform.DefaultAudience,
		Clients:  []authtest.Client{{ID: "svc", Secret: "s3cret"}},
	})
	defer prov.Close()
	plat, err := platform.New(platform.Config{Provider: prov, RequireDPoP: true})
	if err != nil {
		t.Fatal(err)
	}
	defer plat.Close()
	env := map[string]string{"AUTHKIT_CLIENT_ID": "svc", "AUTHKIT_CLIENT_SECRET": "s3cret"}
	sel, err := handlers.Select(t.Context(), handlers.SelectConfig{
		Getenv: func(k string) string { return env[k] },
		OAuth:  handlers.OAuthConfig{Endpoints: handlers.Endpoints{TokenURL: prov.TokenURL()}, DPoP: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sel.Close()
	s, err := session.New(sel, session.Config{HubURL: plat.HubURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	plat.RejectNext(platform.ServiceHub, 1)
	for i := range 2 {
		req, _ := http.NewRequest(http.MethodGet, plat.HubURL()+platform.PathMe, nil)
		resp, err := s.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d through the selected handler: %d", i, resp.StatusCode)
		}
	}
	if st := s.Stats(); st.Reauthentications != 1 {
		t.Errorf("reauthentications %d, want 1", st.Reauthentications)
	}
}

// nestedFirst is a transport whose first request, before it is sent, lets
// another request through the session run to its end: the other one
// learns the server's new nonce while the first is still in flight with
// the old one.
type nestedFirst struct {
	started atomic.Bool
	other   func()
}

func (n *nestedFirst) RoundTrip(req *http.Request) (*http.Response, error) {
	if n.started.CompareAndSwap(false, true) {
		n.other()
	}
	return http.DefaultTransport.RoundTrip(req)
}

// TestDPoPNonceLearntByAnotherRequest: a request whose proof carried an
// old nonce is answered use_dpop_nonce (unquoted, as RFC 9449 allows)
// after another request already learnt the new one: it is replayed with
// the new nonce, and the token is not invalidated. A server that asks for
// a nonce without handing out a new one gets its 401 back, and the token
// stays.
func TestDPoPNonceLearntByAnotherRequest(t *testing.T) {
	const nonce = "n-2"
	key, _ := auth.NewDPoPKey(nil)
	verifier := dpop.NewVerifier(nil, 0)
	var stingy atomic.Bool // ask for a nonce without a DPoP-Nonce header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := verifier.Verify(r.Header.Get("DPoP"), dpop.Request{Method: r.Method, URI: dpop.RequestURI(r),
			AccessToken: strings.TrimPrefix(r.Header.Get("Authorization"), "DPoP "), JKT: key.Thumbprint(), Nonce: nonce})
		switch {
		case errors.Is(err, dpop.ErrUseNonce):
			if !stingy.Load() {
				w.Header().Set("DPoP-Nonce", nonce)
			}
			w.Header().Set("WWW-Authenticate", `DPoP error=use_dpop_nonce`)
			w.WriteHeader(http.StatusUnauthorized)
		case err != nil:
			t.Errorf("proof: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	defer srv.Close()
	var fetches atomic.Int32
	e, err := auth.NewEngine(auth.EngineConfig{Fetch: func(context.Context, *auth.Token) (*auth.Token, error) {
		fetches.Add(1)
		return &auth.Token{AccessToken: auth.NewSecret(fmt.Sprintf("tok-%d", fetches.Load())), TokenType: "DPoP", DPoPKey: key,
			Expiry: time.Now().Add(time.Hour)}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	tr := &nestedFirst{}
	s, err := session.New(auth.Handler(e, "x"), session.Config{HubURL: srv.URL, Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	get := func() int {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/me", nil)
		resp, err := s.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	var other int
	tr.other = func() { other = get() }
	if code := get(); code != http.StatusOK || other != http.StatusOK {
		t.Fatalf("the request in flight %d, the other %d", code, other)
	}
	if n := fetches.Load(); n != 1 || s.Stats().Reauthentications != 0 {
		t.Errorf("fetches %d, reauthentications %d: a nonce challenge invalidated the token", n, s.Stats().Reauthentications)
	}

	stingy.Store(true)
	// A fresh session knows no nonce: its proof lacks it.
	s2, err := session.New(auth.Handler(e, "x"), session.Config{HubURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/me", nil)
	resp, err := s2.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || fetches.Load() != 1 {
		t.Errorf("a challenge without a nonce: %d after %d fetches, want the 401 and the token kept", resp.StatusCode, fetches.Load())
	}
}
