package interop

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/authkit-go/authkit/internal/jwks"
)

// envOIDCDir names the directory of the installed oidc-provider and its
// server.mjs (interop/.work/oidc), for tests that run an instance of their own.
const envOIDCDir = "AUTHKIT_OIDC_DIR"

// oidcInstance is an oidc-provider of the test's own, on a fixed port so
// that a restart keeps its issuer and jwks_uri.
type oidcInstance struct {
	t      *testing.T
	dir    string
	port   int
	issuer string
	cmd    *exec.Cmd
}

func newOIDCInstance(t *testing.T) *oidcInstance {
	t.Helper()
	dir := os.Getenv(envOIDCDir)
	if dir == "" {
		t.Skipf("%s is not set: run the interop tests with `bash interop/run.sh`", envOIDCDir)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	mustf(t, err, "free port")
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	o := &oidcInstance{t: t, dir: dir, port: port, issuer: fmt.Sprintf("http://127.0.0.1:%d", port)}
	t.Cleanup(o.stop)
	return o
}

// start runs server.mjs signing with keys (the first signs) and waits for
// its discovery document.
func (o *oidcInstance) start(keys ...*rsa.PrivateKey) {
	t := o.t
	t.Helper()
	var set jwkset.JWKSMarshal
	for _, k := range keys {
		j, err := jwkset.NewJWKFromKey(k, jwkset.JWKOptions{
			Marshal:  jwkset.JWKMarshalOptions{Private: true},
			Metadata: jwkset.JWKMetadataOptions{KID: kidOf(k), ALG: jwkset.AlgRS256, USE: jwkset.UseSig},
		})
		mustf(t, err, "JWK")
		set.Keys = append(set.Keys, j.Marshal())
	}
	b, err := json.Marshal(set)
	mustf(t, err, "JWK Set")
	file := filepath.Join(t.TempDir(), "keys.json")
	mustf(t, os.WriteFile(file, b, 0o600), "key file")

	logf, err := os.Create(filepath.Join(t.TempDir(), "oidc.log"))
	mustf(t, err, "log file")
	o.cmd = exec.Command("node", "server.mjs")
	o.cmd.Dir = o.dir
	o.cmd.Env = append(os.Environ(), fmt.Sprintf("PORT=%d", o.port), "ISSUER="+o.issuer, "JWKS_FILE="+file)
	o.cmd.Stdout, o.cmd.Stderr = logf, logf
	mustf(t, o.cmd.Start(), "node server.mjs")
	t.Cleanup(func() { logf.Close() })

	deadline := time.Now().Add(testTimeout)
	for {
		resp, err := http.Get(o.issuer + "/.well-known/openid-configuration")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("oidc-provider at %s did not answer within %v: %s", o.issuer, testTimeout, log)
		}
		time.Sleep(100 * time.Millisecond) // polling another process's start, not synchronising goroutines
	}
}

// stop ends the instance by its PID and waits for it.
func (o *oidcInstance) stop() {
	if o.cmd == nil {
		return
	}
	_ = o.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = o.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = o.cmd.Process.Kill()
		<-done
	}
	o.cmd = nil
}

// kidOf names a key by its modulus, the same in every key set it is in.
func kidOf(k *rsa.PrivateKey) string { return fmt.Sprintf("key-%x", k.N.Bytes()[:8]) }

// countingTransport counts the requests it sends.
type countingTransport struct{ n atomic.Int64 }

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(req)
}

// TestOIDCRotatedKeyVerifiesAtOnce: oidc-provider restarts with a key set
// whose first (signing) key is new; the very first ID token signed with it
// verifies at once, against a KeySet that fetched the old set a moment ago,
// with one more JWK Set fetch (issue 20, item 8). The old key stays in the
// set, so the tokens it signed still verify.
func TestOIDCRotatedKeyVerifiesAtOnce(t *testing.T) {
	keyA, err := rsa.GenerateKey(rand.Reader, 2048)
	mustf(t, err, "key A")
	keyB, err := rsa.GenerateKey(rand.Reader, 2048)
	mustf(t, err, "key B")
	o := newOIDCInstance(t)
	o.start(keyA)
	d := discover(t, o.issuer)

	fetches := &countingTransport{}
	ks, err := jwks.NewKeySet(jwks.Config{URL: d.JWKSURI, HTTPClient: &http.Client{Transport: fetches, Timeout: 10 * time.Second}})
	mustf(t, err, "KeySet")
	defer ks.Close()
	v, err := jwks.NewVerifier(jwks.VerifierConfig{KeySet: ks})
	mustf(t, err, "Verifier")
	verify := func(what, raw string) {
		t.Helper()
		// One second bounds the call: a rotated key must not need a retry
		// or a wait for a refresh interval.
		ctx, cancel := context.WithTimeout(testContext(t), time.Second)
		defer cancel()
		if _, err := v.Parse(ctx, raw, jwt.MapClaims{}, jwt.WithIssuer(o.issuer), jwt.WithAudience(oidcDevicePublicID)); err != nil {
			t.Fatalf("%s does not verify: %v", what, err)
		}
	}
	header := func(raw string) string {
		tok, _, err := jwt.NewParser().ParseUnverified(raw, jwt.MapClaims{})
		mustf(t, err, "ID token header")
		kid, _ := tok.Header["kid"].(string)
		return kid
	}

	before := oidcDeviceTokens(t, d).IDToken
	if kid := header(before); kid != kidOf(keyA) {
		t.Fatalf("ID token before the rotation has kid %q, want %q", kid, kidOf(keyA))
	}
	verify("the ID token before the rotation", before)
	if n := fetches.n.Load(); n != 1 {
		t.Fatalf("%d JWK Set fetches, want 1", n)
	}

	o.stop()
	o.start(keyB, keyA)
	after := oidcDeviceTokens(t, d).IDToken
	if kid := header(after); kid != kidOf(keyB) {
		t.Fatalf("ID token after the rotation has kid %q, want the new key %q", kid, kidOf(keyB))
	}
	verify("the first ID token signed with the rotated key", after)
	verify("the ID token signed with the old key", before)
	if n := fetches.n.Load(); n != 2 {
		t.Errorf("%d JWK Set fetches, want 2 (one for the new key)", n)
	}
}
