package handlers

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/authtest"
)

const (
	crashEnvDir   = "AUTHKIT_CRASH_HELPER_DIR"
	crashEnvURL   = "AUTHKIT_CRASH_HELPER_ISSUER"
	crashEnvIndex = "AUTHKIT_CRASH_HELPER_INDEX"
	crashHeader   = "X-Crash-Child"
)

var crashScopes = []string{"openid", "offline_access"}

// crashKey is the store key of the crash test's login (RefreshToken
// handlers without a username).
func crashKey(issuer string) auth.StoreKey {
	return auth.StoreKey{Issuer: issuer, ClientID: "cli", Scopes: crashScopes}
}

// TestRotationSurvivesKill9 runs 4 processes that share one FileStore and
// one rotating refresh token, and kills -9 the process that just received
// a rotated refresh token, at a random moment 2 to 12 ms after the
// provider's answer left: while it saves the token (a save with its fsyncs
// takes about 3 ms here) or after. A token lost that way is presented again
// by the next refresh, and the provider (with reuse detection, as Ory Hydra
// and oidc-provider) revokes the login. Goal: at most 1 revoked login in
// 24 kills.
//
// The first 2 ms are left out on purpose: measured here, a child needs
// 0.3 to 1 ms (3 ms at worst) from the answer leaving the provider to
// having written it, and a kill before that loses the token for any client.
func TestRotationSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills processes for about 20 s")
	}
	if raceDetector {
		// Measured: the race detector stretches the time from the answer
		// to the written file from ~0.2 ms to 2-5 ms on 2 busy cores, so
		// the 0-10 ms kills land before the child holds the token at all.
		// .ci/run runs this test without -race.
		t.Skip("timing test: run without -race (go test -run TestRotationSurvivesKill9 ./handlers/), as .ci/run does")
	}
	const (
		children = 4
		kills    = 24
	)
	p := newProvider(t, nil, func(c *authtest.ProviderConfig) { c.AccessTokenLifetime = 2 * time.Second })
	dir := t.TempDir()
	store, err := auth.NewFileStore(auth.FileStoreConfig{Dir: filepath.Join(dir, "tokens")})
	if err != nil {
		t.Fatal(err)
	}
	issuer := p.Issuer()
	seed := func() {
		ctx := context.Background()
		unlock, err := store.Lock(ctx, crashKey(issuer))
		if err != nil {
			t.Fatal(err)
		}
		defer unlock()
		tok := &auth.Token{AccessToken: auth.NewSecret("seed"), RefreshToken: auth.NewSecret(p.IssueRefreshToken("ada", "cli", crashScopes)), Expiry: time.Now().Add(-time.Second)}
		if err := store.Save(ctx, crashKey(issuer), tok); err != nil {
			t.Fatal(err)
		}
	}
	seed()

	var (
		mu      sync.Mutex
		procs   [children]*exec.Cmd
		killed  int
		stopped bool
	)
	start := func(i int) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestRotationCrashHelper$")
		cmd.Env = append(os.Environ(), crashEnvDir+"="+dir, crashEnvURL+"="+issuer, crashEnvIndex+"="+strconv.Itoa(i))
		cmd.Stderr = io.Discard
		if err := cmd.Start(); err != nil {
			t.Error(err)
			return
		}
		procs[i] = cmd
	}
	// The proxy in front of the token endpoint kills the child whose
	// refresh it just answered, then starts a new one in its place.
	target, _ := url.Parse(issuer)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, target.String()+r.URL.RequestURI(), bytes.NewReader(body))
		req.Header = r.Header.Clone()
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		for k, vv := range resp.Header {
			w.Header()[k] = vv
		}
		sent := time.Now().UnixNano() // the child may read the answer as soon as it is written
		w.WriteHeader(resp.StatusCode)
		w.Write(out)
		w.(http.Flusher).Flush()
		form, _ := url.ParseQuery(string(body))
		i, err := strconv.Atoi(r.Header.Get(crashHeader))
		if form.Get("grant_type") != "refresh_token" || resp.StatusCode != http.StatusOK || err != nil || i < 0 || i >= children {
			return
		}
		delay := 2*time.Millisecond + time.Duration(rand.N(10_000))*time.Microsecond
		flushed := sent
		time.AfterFunc(delay, func() {
			mu.Lock()
			defer mu.Unlock()
			if stopped || killed >= kills || procs[i] == nil {
				return
			}
			killed++
			tracef(dir, "kill pid=%d flushed=%d at=%d", procs[i].Process.Pid, flushed, time.Now().UnixNano())
			procs[i].Process.Kill()
			procs[i].Wait()
			start(i)
		})
	}))
	defer proxy.Close()
	t.Setenv(crashEnvURL+"_PROXY", proxy.URL)

	mu.Lock()
	for i := range children {
		start(i)
	}
	mu.Unlock()
	deadline := time.Now().Add(90 * time.Second)
	revoked := 0
	for time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		if n := p.ReusedRefreshTokens(); n > revoked {
			revoked = n
			seed() // a new login, so that the remaining kills still count
		}
		mu.Lock()
		done := killed >= kills
		mu.Unlock()
		if done {
			break
		}
	}
	time.Sleep(3 * time.Second) // the survivors refresh once more: a lost token shows now
	revoked = p.ReusedRefreshTokens()
	mu.Lock()
	stopped = true
	for _, c := range procs {
		if c != nil {
			c.Process.Kill()
			c.Wait()
		}
	}
	n := killed
	mu.Unlock()
	t.Logf("%d kills, %d logins revoked for refresh token reuse, %d refreshes in all", n, revoked, p.GrantRequests(authtest.GrantRefreshToken))
	if f := os.Getenv("AUTHKIT_CRASH_REPORT"); f != "" {
		data, _ := os.ReadFile(filepath.Join(dir, "trace.log"))
		os.WriteFile(f, data, 0o600)
		t.Log(killReport(dir))
	}
	if n < kills {
		t.Errorf("only %d kills happened in 90 s, want %d", n, kills)
	}
	if revoked > 1 {
		t.Errorf("%d logins revoked after %d kills, want at most 1; where each kill landed:\n%s", revoked, n, killReport(dir))
	}
}

// killReport tells, for each kill, whether the killed child had started or
// finished saving the token it had just been sent.
func killReport(dir string) string {
	data, _ := os.ReadFile(filepath.Join(dir, "trace.log"))
	type event struct {
		kind        string
		pid         int
		flushed, at int64
	}
	var events []event
	for _, line := range strings.Split(string(data), "\n") {
		var e event
		if n, _ := fmt.Sscanf(line, "kill pid=%d flushed=%d at=%d", &e.pid, &e.flushed, &e.at); n == 3 {
			e.kind = "kill"
		} else if n, _ := fmt.Sscanf(line, "save-start pid=%d at=%d", &e.pid, &e.at); n == 2 {
			e.kind = "start"
		} else if n, _ := fmt.Sscanf(line, "save-end pid=%d at=%d", &e.pid, &e.at); n == 2 {
			e.kind = "end"
		} else {
			continue
		}
		events = append(events, e)
	}
	var b strings.Builder
	for i, k := range events {
		if k.kind != "kill" {
			continue
		}
		var start, end int64
		for _, e := range events[:i] {
			if e.pid == k.pid && e.kind == "start" {
				start = e.at
			}
			if e.pid == k.pid && e.kind == "end" {
				end = e.at
			}
		}
		where := "before its save started"
		if start > k.flushed {
			where = "after its save"
			if end < start {
				where = "during its save"
			}
		}
		fmt.Fprintf(&b, "  pid %d killed %.2f ms after the answer, %s\n", k.pid, float64(k.at-k.flushed)/1e6, where)
	}
	return b.String()
}

// crashTransport marks each request with the child's index.
type crashTransport struct{ index string }

func (c crashTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(crashHeader, c.index)
	return http.DefaultTransport.RoundTrip(r)
}

// TestRotationCrashHelper is one process of TestRotationSurvivesKill9: it
// reads credentials in a loop until killed. It does nothing when run
// directly.
func TestRotationCrashHelper(t *testing.T) {
	dir := os.Getenv(crashEnvDir)
	if dir == "" {
		t.Skip("helper process of TestRotationSurvivesKill9")
	}
	issuer, proxy := os.Getenv(crashEnvURL), os.Getenv(crashEnvURL+"_PROXY")
	store, err := auth.NewFileStore(auth.FileStoreConfig{Dir: filepath.Join(dir, "tokens")})
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewRefreshToken(RefreshTokenConfig{
		OAuthConfig: OAuthConfig{
			Endpoints:  Endpoints{Issuer: issuer, TokenURL: proxy + authtest.EndpointToken},
			ClientID:   "cli",
			Scopes:     crashScopes,
			Store:      traceStore{store, dir},
			HTTPClient: &http.Client{Transport: crashTransport{index: os.Getenv(crashEnvIndex)}},
		},
		RefreshToken: auth.NewSecret("never-sent-while-the-store-holds-one"),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if _, err := h.HubRequestHeaders(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
		}
		cancel()
		time.Sleep(20 * time.Millisecond)
	}
}

// traceStore notes when each save starts and ends.
type traceStore struct {
	*auth.FileStore
	dir string
}

func (s traceStore) Save(ctx context.Context, k auth.StoreKey, t *auth.Token) error {
	tracef(s.dir, "save-start pid=%d at=%d", os.Getpid(), time.Now().UnixNano())
	err := s.FileStore.Save(ctx, k, t)
	tracef(s.dir, "save-end pid=%d at=%d", os.Getpid(), time.Now().UnixNano())
	return err
}

// tracef appends a line to the test's trace; each line is one write.
func tracef(dir, format string, args ...any) {
	f, _ := os.OpenFile(filepath.Join(dir, "trace.log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	fmt.Fprintf(f, format+"\n", args...)
	f.Close()
}
