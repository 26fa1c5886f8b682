package jwks

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/authkit-go/authkit/auth"
)

// secretMarker is put in bodies that must never reach an error message.
const secretMarker = "SECRET-BODY-MARKER"

// endless, as a fakeJWKS body, makes it answer an endless stream.
const endless = "<endless>"

// waitLimit bounds every wait of a test for something that must happen
// soon; it is a bound against hangs, not a speed claim.
const waitLimit = 5 * time.Second

// signer signs tokens with one key.
type signer struct {
	kid    string
	method jwt.SigningMethod
	key    any // a crypto.Signer, or []byte for HMAC
}

// testKeys are generated once: RSA generation is slow under -race.
var testKeys = sync.OnceValue(func() map[string]signer {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p256b, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	return map[string]signer{
		"rsa":  {"rsa", jwt.SigningMethodRS256, rsaKey},
		"pss":  {"rsa", jwt.SigningMethodPS256, rsaKey},
		"A":    {"A", jwt.SigningMethodES256, p256},
		"B":    {"B", jwt.SigningMethodES256, p256b},
		"p384": {"p384", jwt.SigningMethodES384, p384},
		"ed":   {"ed", jwt.SigningMethodEdDSA, ed},
		"hmac": {"hmac", jwt.SigningMethodHS256, []byte("0123456789abcdef0123456789abcdef")},
	}
})

// key returns the test signer called name.
func key(name string) signer { return testKeys()[name] }

// withKid returns s naming kid in its tokens ("" for none).
func (s signer) withKid(kid string) signer {
	s.kid = kid
	return s
}

func (s signer) sign(t *testing.T) string {
	t.Helper()
	tok := jwt.NewWithClaims(s.method, jwt.MapClaims{"sub": "alice"})
	if s.kid != "" {
		tok.Header["kid"] = s.kid
	}
	raw, err := tok.SignedString(s.key)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func (s signer) public() any {
	if b, ok := s.key.([]byte); ok {
		return auth.NewSecret(string(b)) // the Verifier takes HMAC keys as Secrets
	}
	return s.key.(crypto.Signer).Public()
}

// jwkOf renders s's public key as a JWK.
func jwkOf(t *testing.T, s signer) jwkset.JWKMarshal {
	t.Helper()
	j, err := jwkset.NewJWKFromKey(s.public(), jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: s.kid}})
	if err != nil {
		t.Fatal(err)
	}
	return j.Marshal()
}

// jwkSet renders signers' public keys as a JWK Set.
func jwkSet(t *testing.T, signers ...signer) []byte {
	t.Helper()
	var keys []jwkset.JWKMarshal
	for _, s := range signers {
		keys = append(keys, jwkOf(t, s))
	}
	return marshalSet(t, keys...)
}

func marshalSet(t *testing.T, keys ...jwkset.JWKMarshal) []byte {
	t.Helper()
	b, err := json.Marshal(jwkset.JWKSMarshal{Keys: append([]jwkset.JWKMarshal{}, keys...)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fakeJWKS is a JWK Set endpoint that counts requests and can be told
// what to answer, or to hold its answers. A request gets the answer set
// when it arrived, even if it is held past a later serve: a fetch sees the
// set as it was when it reached the provider.
type fakeJWKS struct {
	srv  *httptest.Server
	n    atomic.Int64
	hits chan struct{} // one value per request, never blocks the handler

	mu     sync.Mutex // guards status, body, gate
	status int
	body   []byte
	gate   chan struct{} // non-nil: answers wait until it is closed
}

func newFakeJWKS(t *testing.T, body []byte) *fakeJWKS {
	f := &fakeJWKS{hits: make(chan struct{}, 10000), status: http.StatusOK, body: body}
	ended := make(chan struct{})
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		gate, status, body := f.gate, f.status, f.body
		f.mu.Unlock()
		f.n.Add(1) // after the snapshot: a test that saw the hit may serve anew
		select {
		case f.hits <- struct{}{}:
		default:
		}
		if gate != nil {
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			case <-ended:
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		if string(body) != endless {
			w.Write(body)
			return
		}
		chunk := []byte(strings.Repeat(secretMarker, 1000))
		for r.Context().Err() == nil {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	t.Cleanup(f.srv.Close)
	t.Cleanup(func() { close(ended) }) // runs first: frees held handlers
	return f
}

func (f *fakeJWKS) serve(status int, body []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status, f.body = status, body
}

// hold makes the answers wait until release is called.
func (f *fakeJWKS) hold() (release func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	gate := make(chan struct{})
	f.gate = gate
	return sync.OnceFunc(func() {
		f.mu.Lock()
		f.gate = nil
		f.mu.Unlock()
		close(gate)
	})
}

// waitHit waits for the next request to reach the server.
func (f *fakeJWKS) waitHit(t *testing.T) {
	t.Helper()
	select {
	case <-f.hits:
	case <-time.After(waitLimit):
		t.Fatal("the JWK Set endpoint got no request")
	}
}

// waitingCtx is a context that tells when a caller starts waiting for a
// fetch: lookup calls Done only to block on one. It is a plain context
// otherwise.
type waitingCtx struct {
	context.Context
	once    sync.Once
	waiting chan struct{} // closed at the first call of Done
}

func newWaitingCtx(parent context.Context) *waitingCtx {
	return &waitingCtx{Context: parent, waiting: make(chan struct{})}
}

func (c *waitingCtx) Done() <-chan struct{} {
	c.once.Do(func() { close(c.waiting) })
	return c.Context.Done()
}

// waitWaiting waits until a caller waits on c.
func (c *waitingCtx) waitWaiting(t *testing.T) {
	t.Helper()
	select {
	case <-c.waiting:
	case <-time.After(waitLimit):
		t.Fatal("the caller never waited for a fetch")
	}
}

// newRemote returns a KeySet made of cfg and a Verifier on it; the
// KeySet is closed when the test ends.
func newRemote(t *testing.T, cfg Config) (*KeySet, *Verifier) {
	t.Helper()
	ks, err := NewKeySet(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close() })
	v, err := NewVerifier(VerifierConfig{KeySet: ks})
	if err != nil {
		t.Fatal(err)
	}
	return ks, v
}

func parse(ctx context.Context, v *Verifier, raw string, opts ...jwt.ParserOption) error {
	tok, err := v.Parse(ctx, raw, jwt.MapClaims{}, opts...)
	if err == nil && (tok == nil || !tok.Valid) {
		return errNotValid
	}
	return err
}

var errNotValid = errors.New("Parse returned no error but no valid token")

// goroutinesBackTo waits until at most base goroutines run.
func goroutinesBackTo(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, want at most %d:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		runtime.Gosched()
		time.Sleep(10 * time.Millisecond) // polling for goroutines to exit, not reaching an expiry
	}
}
