package session

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/internal/goroutines"
	"go.uber.org/goleak"
)

// The leak check: every test logs through capture() and reports its errors
// through noteErr; every secret a test uses is made by secret(). After all
// tests ran, TestMain fails the run if any secret appears in any log line
// or error string.
var leaks struct {
	mu      sync.Mutex // guards the fields below
	logs    bytes.Buffer
	errs    []string
	secrets []string
}

// TestMain fails the run if a goroutine is left once the tests end, or if
// a secret shows in a log line or an error.
func TestMain(m *testing.M) {
	goroutines.VerifyTestMain(m, goleak.Cleanup(func(code int) { os.Exit(checkSecrets(code)) }))
}

// checkSecrets returns the exit code of the run after the secret check.
func checkSecrets(code int) int {
	leaks.mu.Lock()
	corpus := leaks.logs.String() + "\n" + strings.Join(leaks.errs, "\n")
	found := findLeaks(corpus, leaks.secrets)
	nLogs, nErrs, nSecrets := strings.Count(leaks.logs.String(), "\n"), len(leaks.errs), len(leaks.secrets)
	leaks.mu.Unlock()
	if len(found) > 0 {
		fmt.Fprintf(os.Stderr, "LEAK: %d secrets appear in logs or errors: %q\n", len(found), found)
		return 1
	}
	if code == 0 && flag.Lookup("test.run").Value.String() == "" && (nLogs == 0 || nErrs == 0 || nSecrets == 0) {
		fmt.Fprintf(os.Stderr, "leak check saw nothing: %d log lines, %d errors, %d secrets\n", nLogs, nErrs, nSecrets)
		return 1
	}
	return code
}

// findLeaks returns the secrets that occur in corpus.
func findLeaks(corpus string, secrets []string) []string {
	var found []string
	for _, s := range secrets {
		if strings.Contains(corpus, s) {
			found = append(found, s)
		}
	}
	return found
}

func TestFindLeaksDetects(t *testing.T) {
	tests := []struct {
		name    string
		corpus  string
		secrets []string
		want    int
	}{
		{"clean", "GET https://hub/x?token=REDACTED", []string{"s3cr3t-token-value"}, 0},
		{"leaked", "error: Bearer s3cr3t-token-value rejected", []string{"s3cr3t-token-value"}, 1},
		{"two of three", "a=pw-1 b=pw-2", []string{"pw-1", "pw-2", "pw-3"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := findLeaks(tt.corpus, tt.secrets); len(got) != tt.want {
				t.Fatalf("findLeaks = %q, want %d hits", got, tt.want)
			}
		})
	}
}

var secretSeq atomic.Int64

// secret returns a unique secret with the given kind in its name and
// registers it for the leak check.
func secret(kind string) string {
	s := fmt.Sprintf("%s-SECRET%04d-%d", kind, secretSeq.Add(1), time.Now().UnixNano()%1e6)
	leaks.mu.Lock()
	leaks.secrets = append(leaks.secrets, s)
	leaks.mu.Unlock()
	return s
}

type syncWriter struct{}

func (syncWriter) Write(p []byte) (int, error) {
	leaks.mu.Lock()
	defer leaks.mu.Unlock()
	return leaks.logs.Write(p)
}

// capture returns a logger that records every level into the leak corpus,
// and, if lines is not nil, into lines as well.
func capture(lines *lineBuf) *slog.Logger {
	var w io.Writer = syncWriter{}
	if lines != nil {
		w = io.MultiWriter(w, lines)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type lineBuf struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (l *lineBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lineBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// noteErr records err (as %v, %+v and %#v) for the leak check and returns it.
func noteErr(err error) error {
	if err == nil {
		return nil
	}
	leaks.mu.Lock()
	leaks.errs = append(leaks.errs, err.Error(), fmt.Sprintf("%v", err), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
	for e := errors.Unwrap(err); e != nil; e = errors.Unwrap(e) {
		leaks.errs = append(leaks.errs, fmt.Sprintf("%#v", e))
	}
	leaks.mu.Unlock()
	return err
}

// newSession is New with the capturing logger; it fails the test on error.
func newSession(t testing.TB, h auth.AuthenticationHandler, cfg Config) *Session {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = capture(nil)
	}
	s, err := New(h, cfg)
	if err != nil {
		t.Fatalf("New: %v", noteErr(err))
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// do sends req through s, records the error and reads the body.
func do(t testing.TB, s *Session, req *http.Request) (*http.Response, string, error) {
	t.Helper()
	resp, err := s.Do(req)
	if err != nil {
		return nil, "", noteErr(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp, string(b), nil
}

func newReq(t testing.TB, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// staticHandler is a fake handler with fixed headers per service. It
// records the values it was told were rejected.
type staticHandler struct {
	hub, am http.Header
	err     error

	mu          sync.Mutex // guards invalidated, calls
	invalidated []string
	calls       int
}

func (h *staticHandler) Authenticate(context.Context) error { return nil }
func (h *staticHandler) Authenticated() bool                { return h.err == nil }
func (h *staticHandler) Username() string                   { return "alice" }
func (h *staticHandler) HubRequestHeaders(context.Context) (http.Header, error) {
	h.mu.Lock()
	h.calls++
	h.mu.Unlock()
	if h.err != nil {
		return nil, h.err
	}
	return h.hub, nil
}
func (h *staticHandler) AccessManagerRequestHeaders(context.Context) (http.Header, error) {
	if h.err != nil {
		return nil, h.err
	}
	return h.am, nil
}
func (h *staticHandler) MessageServiceMetadata(context.Context) (map[string]string, error) {
	return nil, errors.New("not used")
}

// The doubles must stay Invalidators: the session finds the method by a
// type assertion, which a changed signature would silently defeat.
var (
	_ auth.Invalidator = (*staticHandler)(nil)
	_ auth.Invalidator = (*rotatingHandler)(nil)
)

func (h *staticHandler) Invalidate(_ auth.Service, v string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.invalidated = append(h.invalidated, v)
}

// engineHandler is auth.Handler's handler on an engine whose fetch counts
// calls and hands out secret tokens "<prefix>-1", "<prefix>-2", ...
type engineHandler struct {
	*auth.EngineHandler
	prefix  string
	fetches atomic.Int64
}

// token returns the n-th token the engine hands out.
func (h *engineHandler) token(n int) string { return fmt.Sprintf("%s-%d-", h.prefix, n) }

func newEngineHandler(t testing.TB, fetchErr error) *engineHandler {
	t.Helper()
	h := &engineHandler{prefix: secret("tok")}
	e, err := auth.NewEngine(auth.EngineConfig{
		Logger: capture(nil),
		Fetch: func(ctx context.Context, _ *auth.Token) (*auth.Token, error) {
			n := h.fetches.Add(1)
			if fetchErr != nil {
				return nil, fetchErr
			}
			return &auth.Token{AccessToken: auth.NewSecret(h.token(int(n))), TokenType: "Bearer", Expiry: time.Now().Add(time.Hour)}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	h.EngineHandler = auth.Handler(e, "alice")
	t.Cleanup(func() { e.Close() })
	return h
}

// recorder is a fake base transport: it records each request's URL and
// headers and answers 200 with an empty body.
type recorder struct {
	mu   sync.Mutex // guards reqs
	reqs []*http.Request
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close()
	}
	r.mu.Lock()
	r.reqs = append(r.reqs, req)
	r.mu.Unlock()
	return &http.Response{StatusCode: 200, Status: "200 OK", Header: http.Header{}, Body: http.NoBody, Request: req}, nil
}

func (r *recorder) last() *http.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reqs) == 0 {
		return nil
	}
	return r.reqs[len(r.reqs)-1]
}
