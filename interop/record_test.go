package interop

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"sync"
	"testing"
)

// exchange is one token-endpoint round trip as the handler made it: the
// grant type it sent and the error code (or "" for success) it got back.
type exchange struct {
	GrantType string
	Status    int
	Error     string
}

// recorder is an http.RoundTripper that records the handlers' POSTs to a
// token endpoint, so tests can assert what went over the wire and wait for
// a given answer (e.g. the first authorization_pending).
type recorder struct {
	tokenURL string

	mu    sync.Mutex // guards log and waits
	log   []exchange
	waits []recWait
}

type recWait struct {
	match func(exchange) bool
	ch    chan struct{}
}

func newRecorder(tokenURL string) *recorder { return &recorder{tokenURL: tokenURL} }

// client returns an HTTP client that records through r.
func (r *recorder) client() *http.Client { return &http.Client{Transport: r} }

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodPost || req.URL.String() != r.tokenURL {
		return http.DefaultTransport.RoundTrip(req)
	}
	var body []byte
	if req.Body != nil {
		var err error
		body, err = io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	form, _ := url.ParseQuery(string(body))
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	rb, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(rb))
	var e struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(rb, &e)
	x := exchange{GrantType: form.Get("grant_type"), Status: resp.StatusCode, Error: e.Error}
	r.mu.Lock()
	r.log = append(r.log, x)
	kept := r.waits[:0]
	for _, w := range r.waits {
		if w.match(x) {
			close(w.ch)
		} else {
			kept = append(kept, w)
		}
	}
	r.waits = kept
	r.mu.Unlock()
	return resp, nil
}

// when returns a channel closed at the next exchange that matches.
func (r *recorder) when(match func(exchange) bool) <-chan struct{} {
	ch := make(chan struct{})
	r.mu.Lock()
	r.waits = append(r.waits, recWait{match, ch})
	r.mu.Unlock()
	return ch
}

// exchanges returns what was recorded so far.
func (r *recorder) exchanges() []exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]exchange(nil), r.log...)
}

// count returns how many recorded exchanges used grantType.
func (r *recorder) count(grantType string) int {
	n := 0
	for _, x := range r.exchanges() {
		if x.GrantType == grantType {
			n++
		}
	}
	return n
}

// bgT lets helpers written for a test's goroutine (t.Fatalf...) run in a
// goroutine of their own: failures are reported with t.Errorf and end the
// goroutine only.
type bgT struct {
	testing.TB
}

func (b bgT) Fatalf(format string, args ...any) {
	b.TB.Helper()
	b.TB.Errorf(format, args...)
	runtime.Goexit()
}

func (b bgT) Fatal(args ...any) {
	b.TB.Helper()
	b.TB.Error(args...)
	runtime.Goexit()
}

func (b bgT) FailNow() {
	b.TB.Fail()
	runtime.Goexit()
}

func (b bgT) Skipf(format string, args ...any) {
	b.Fatalf("skip in a background goroutine: "+format, args...)
}

// goBackground runs f(bgT) in a goroutine and returns a channel closed when
// it ends.
func goBackground(t testing.TB, f func(t testing.TB)) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(bgT{t})
	}()
	return done
}

func (x exchange) String() string {
	if x.Error == "" {
		return fmt.Sprintf("%s→%d", x.GrantType, x.Status)
	}
	return fmt.Sprintf("%s→%d %s", x.GrantType, x.Status, x.Error)
}
