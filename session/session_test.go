package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authkit-go/authkit/auth"
)

// credHeaders are the headers that carry credentials in these tests.
var credHeaders = []string{"Authorization", "X-Api-Key-Id", "X-Api-Key"}

// seen is what a test server received.
type seen struct {
	mu   sync.Mutex // guards reqs
	reqs []seenReq
}

type seenReq struct {
	path   string
	header http.Header
	body   string
}

func (s *seen) record(r *http.Request) seenReq {
	b, _ := io.ReadAll(r.Body)
	sr := seenReq{path: r.URL.Path, header: r.Header.Clone(), body: string(b)}
	s.mu.Lock()
	s.reqs = append(s.reqs, sr)
	s.mu.Unlock()
	return sr
}

func (s *seen) all() []seenReq {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reqs)
}

func (s *seen) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.reqs)
}

// recordingServer answers 200 "ok" and records every request.
func recordingServer(t *testing.T) (*httptest.Server, *seen) {
	sn := &seen{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sn.record(r)
		io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return srv, sn
}

// assertCreds checks that h carries exactly the credential headers in want.
func assertCreds(t *testing.T, h http.Header, want map[string]string) {
	t.Helper()
	for _, k := range credHeaders {
		got, ok := h[k]
		w, wantOK := want[k]
		switch {
		case wantOK && (!ok || len(got) != 1 || got[0] != w):
			t.Errorf("header %s = %q, want exactly [%q]", k, got, redactForTest(w))
		case !wantOK && ok:
			t.Errorf("header %s sent (%d values), want none", k, len(got))
		}
	}
}

func redactForTest(s string) string {
	if len(s) > 10 {
		return s[:10] + "…"
	}
	return s
}

type fixture struct {
	hub, am, foreign  *httptest.Server
	hubSeen, amSeen   *seen
	foreignSeen       *seen
	h                 *staticHandler
	hubCreds, amCreds map[string]string
}

// newFixture starts a hub (base path /hub, with redirects), an access
// manager and a foreign server; the handler gives the hub a bearer token and
// the access manager an API key.
func newFixture(t *testing.T) *fixture {
	f := &fixture{hubSeen: &seen{}}
	f.am, f.amSeen = recordingServer(t)
	f.foreign, f.foreignSeen = recordingServer(t)
	f.hub = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.hubSeen.record(r)
		switch r.URL.Path {
		case "/hub/same":
			http.Redirect(w, r, "/hub/target", http.StatusFound)
		case "/hub/outside":
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		case "/hub/foreign":
			http.Redirect(w, r, f.foreign.URL+"/land", http.StatusFound)
		case "/hub/to-am":
			http.Redirect(w, r, f.am.URL+"/roles", http.StatusTemporaryRedirect)
		case "/hub/foreign-back":
			http.Redirect(w, r, f.foreign.URL+"/bounce", http.StatusFound)
		default:
			io.WriteString(w, "ok")
		}
	}))
	t.Cleanup(f.hub.Close)
	tok, keyID, key := secret("hubtoken"), "key-id-7", secret("apikey")
	f.hubCreds = map[string]string{"Authorization": "Bearer " + tok}
	f.amCreds = map[string]string{"X-Api-Key-Id": keyID, "X-Api-Key": key}
	f.h = &staticHandler{
		hub: http.Header{"Authorization": {"Bearer " + tok}},
		am:  http.Header{"X-Api-Key-Id": {keyID}, "X-Api-Key": {key}},
	}
	return f
}

func (f *fixture) session(t *testing.T, cfg Config) *Session {
	cfg.HubURL = f.hub.URL + "/hub"
	cfg.AccessManagerURL = f.am.URL
	cfg.RetryWaitMin, cfg.RetryWaitMax = time.Millisecond, 2*time.Millisecond
	return newSession(t, f.h, cfg)
}

func TestCredentialsPerService(t *testing.T) {
	f := newFixture(t)
	s := f.session(t, Config{})
	local := strings.Replace(f.hub.URL, "127.0.0.1", "localhost", 1)
	tests := []struct {
		name string
		url  string
		srv  *seen
		want map[string]string
	}{
		{"hub base path", f.hub.URL + "/hub", f.hubSeen, f.hubCreds},
		{"hub below base path", f.hub.URL + "/hub/v1/things?limit=1", f.hubSeen, f.hubCreds},
		{"hub path outside base path", f.hub.URL + "/admin", f.hubSeen, nil},
		{"hub path escaping base path", f.hub.URL + "/hub/../admin", f.hubSeen, nil},
		{"hub prefix lookalike path", f.hub.URL + "/hubx", f.hubSeen, nil},
		{"hub under another host name", local + "/hub/x", f.hubSeen, nil},
		{"access manager", f.am.URL + "/roles", f.amSeen, f.amCreds},
		{"foreign origin (other port)", f.foreign.URL + "/hub/x", f.foreignSeen, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.srv.count()
			resp, body, err := do(t, s, newReq(t, http.MethodGet, tt.url, nil))
			if err != nil {
				t.Fatalf("Do: %v", err)
			}
			if resp.StatusCode != 200 || body != "ok" {
				t.Fatalf("got %d %q", resp.StatusCode, body)
			}
			reqs := tt.srv.all()
			if len(reqs) != before+1 {
				t.Fatalf("server saw %d requests, want %d", len(reqs), before+1)
			}
			got := reqs[len(reqs)-1]
			assertCreds(t, got.header, tt.want)
			if ua := got.header.Get("User-Agent"); ua != auth.DefaultUserAgent {
				t.Errorf("User-Agent = %q, want %q", ua, auth.DefaultUserAgent)
			}
		})
	}
}

// TestLookalikesGetNothing checks origins that no local server can play
// (other scheme on the same port, DNS lookalikes) against a recording
// base transport.
func TestLookalikesGetNothing(t *testing.T) {
	tok := secret("tok")
	h := &staticHandler{hub: http.Header{"Authorization": {"Bearer " + tok}}, am: http.Header{"X-Api-Key": {tok}}}
	rec := &recorder{}
	s := newSession(t, h, Config{HubURL: "https://hub.example.com/api", AccessManagerURL: "http://localhost:3000", Transport: rec})
	tests := []struct {
		url  string
		want map[string]string
	}{
		{"https://hub.example.com/api/x", map[string]string{"Authorization": "Bearer " + tok}},
		{"https://hub.example.com:443/api/x", map[string]string{"Authorization": "Bearer " + tok}},
		{"https://hub.example.com.evil.test/api/x", nil},
		{"https://evilhub.example.com/api/x", nil},
		{"https://hub.example.com:8443/api/x", nil},
		{"http://hub.example.com/api/x", nil},
		{"http://hub.example.com:443/api/x", nil},
		{"https://hub.example.com/apis", nil},
		{"https://hub.example.com/", nil},
		{"http://localhost:3000/x", map[string]string{"X-Api-Key": tok}},
		{"http://localhost:30001/x", nil},
		{"http://localhost:300/x", nil},
		{"https://localhost:3000/x", nil},
		{"http://127.0.0.1:3000/x", nil},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			if _, _, err := do(t, s, newReq(t, http.MethodGet, tt.url, nil)); err != nil {
				t.Fatal(err)
			}
			got := rec.last()
			if got.URL.String() != tt.url {
				t.Fatalf("sent %s", got.URL)
			}
			assertCreds(t, got.Header, tt.want)
		})
	}
}

func TestRedirects(t *testing.T) {
	f := newFixture(t)
	s := f.session(t, Config{})
	tests := []struct {
		name     string
		path     string
		landSeen func() *seen
		landPath string
		want     map[string]string
	}{
		{"same origin keeps credentials", "/hub/same", func() *seen { return f.hubSeen }, "/hub/target", f.hubCreds},
		{"same origin outside base path drops them", "/hub/outside", func() *seen { return f.hubSeen }, "/elsewhere", nil},
		{"foreign origin gets none", "/hub/foreign", func() *seen { return f.foreignSeen }, "/land", nil},
		{"hub to access manager gets the access manager's", "/hub/to-am", func() *seen { return f.amSeen }, "/roles", f.amCreds},
	}
	clients := []struct {
		name string
		do   func(*http.Request) (*http.Response, error)
	}{
		{"Do", s.Do},
		{"HTTPClient", s.HTTPClient().Do},
	}
	for _, c := range clients {
		for _, tt := range tests {
			t.Run(c.name+"/"+tt.name, func(t *testing.T) {
				land := tt.landSeen()
				before := land.count()
				resp, err := c.do(newReq(t, http.MethodGet, f.hub.URL+tt.path, nil))
				if err != nil {
					t.Fatal(noteErr(err))
				}
				resp.Body.Close()
				reqs := land.all()
				if len(reqs) <= before {
					t.Fatal("redirect target not reached")
				}
				got := reqs[len(reqs)-1]
				if got.path != tt.landPath {
					t.Fatalf("landed on %s, want %s", got.path, tt.landPath)
				}
				assertCreds(t, got.header, tt.want)
			})
		}
	}
}

func TestUserAgent(t *testing.T) {
	srv, sn := recordingServer(t)
	tests := []struct {
		name   string
		cfgUA  string
		reqUA  []string // nil: the request sets none
		url    string
		wantUA string
	}{
		{"default", "", nil, "/x", auth.DefaultUserAgent},
		{"configured", "acme-sdk/2.1 authkit", nil, "/x", "acme-sdk/2.1 authkit"},
		{"the caller's own wins", "acme-sdk/2.1", []string{"mine/1"}, "/x", "mine/1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSession(t, &staticHandler{hub: http.Header{}}, Config{HubURL: srv.URL, UserAgent: tt.cfgUA})
			req := newReq(t, http.MethodGet, srv.URL+tt.url, nil)
			if tt.reqUA != nil {
				req.Header["User-Agent"] = tt.reqUA
			}
			if _, _, err := do(t, s, req); err != nil {
				t.Fatal(err)
			}
			reqs := sn.all()
			if got := reqs[len(reqs)-1].header.Get("User-Agent"); got != tt.wantUA {
				t.Errorf("User-Agent = %q, want %q", got, tt.wantUA)
			}
			if !strings.HasPrefix(auth.DefaultUserAgent, "authkit/") {
				t.Errorf("auth.DefaultUserAgent = %q", auth.DefaultUserAgent)
			}
		})
	}
}

// TestDoesNotMutate checks that neither the caller's request nor the
// handler's header maps change, through retries, a 401 replay and a
// redirect.
func TestDoesNotMutate(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		switch n.Add(1) {
		case 1:
			w.WriteHeader(http.StatusServiceUnavailable)
		case 2:
			w.WriteHeader(http.StatusUnauthorized)
		case 3:
			http.Redirect(w, r, "/done", http.StatusTemporaryRedirect)
		default:
			io.WriteString(w, "ok")
		}
	}))
	defer srv.Close()
	tok := secret("tok")
	calls := 0
	h := &rotatingHandler{next: func() string { calls++; return fmt.Sprintf("Bearer %s-%d", tok, calls) }}
	s := newSession(t, h, Config{HubURL: srv.URL, RetryWaitMin: time.Millisecond, RetryWaitMax: time.Millisecond})
	req := newReq(t, http.MethodPut, srv.URL+"/thing", strings.NewReader("payload"))
	req.Header.Set("Accept", "application/json")
	req.Header.Add("X-Multi", "a")
	req.Header.Add("X-Multi", "b")
	wantHeader := req.Header.Clone()
	wantURL, wantLen, body, getBody := req.URL.String(), req.ContentLength, req.Body, req.GetBody
	resp, got, err := do(t, s, req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || got != "ok" {
		t.Fatalf("got %d %q", resp.StatusCode, got)
	}
	if !maps.EqualFunc(req.Header, wantHeader, slices.Equal) {
		t.Errorf("caller's header changed: %v", req.Header)
	}
	if req.URL.String() != wantURL || req.ContentLength != wantLen || req.Body != body || (req.GetBody == nil) != (getBody == nil) {
		t.Error("caller's request changed")
	}
	for i, hh := range h.handed() {
		if len(hh) != 1 || len(hh["Authorization"]) != 1 || !strings.HasSuffix(hh["Authorization"][0], fmt.Sprintf("-%d", i+1)) {
			t.Errorf("handler's header %d changed: %d keys", i, len(hh))
		}
	}
}

// rotatingHandler returns a new Authorization value on every call and
// keeps every map it handed out.
type rotatingHandler struct {
	staticHandler
	next func() string

	hmu  sync.Mutex // guards maps, next
	maps []http.Header
}

func (h *rotatingHandler) HubRequestHeaders(context.Context) (http.Header, error) {
	h.hmu.Lock()
	defer h.hmu.Unlock()
	hh := http.Header{"Authorization": {h.next()}}
	h.maps = append(h.maps, hh)
	return hh, nil
}

func (h *rotatingHandler) handed() []http.Header {
	h.hmu.Lock()
	defer h.hmu.Unlock()
	return slices.Clone(h.maps)
}

func TestCredentialErrorIsNotRetried(t *testing.T) {
	srv, sn := recordingServer(t)
	h := newEngineHandler(t, fmt.Errorf("%w: the refresh token was rejected", auth.ErrLoginRequired))
	s := newSession(t, h, Config{HubURL: srv.URL, RetryWaitMin: time.Millisecond, RetryWaitMax: time.Millisecond})
	_, _, err := do(t, s, newReq(t, http.MethodGet, srv.URL+"/x", nil))
	if !errors.Is(err, auth.ErrLoginRequired) {
		t.Fatalf("err = %v, want ErrLoginRequired", err)
	}
	var ce *CredentialError
	if !errors.As(err, &ce) || ce.Service != "hub" {
		t.Fatalf("err = %#v, want a CredentialError for the hub", err)
	}
	var re *RequestError
	if !errors.As(err, &re) || re.Method != http.MethodGet || re.Service != "hub" {
		t.Fatalf("err = %#v, want a RequestError", err)
	}
	if n := sn.count(); n != 0 {
		t.Errorf("server saw %d requests, want 0", n)
	}
	if n := h.fetches.Load(); n != 1 {
		t.Errorf("fetches = %d, want 1", n)
	}
}

func TestHTTPClientRetries(t *testing.T) {
	var n atomic.Int64
	tok := secret("tok")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+tok {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		if n.Add(1) == 1 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	s := newSession(t, &staticHandler{hub: http.Header{"Authorization": {"Bearer " + tok}}},
		Config{HubURL: srv.URL, RetryWaitMin: time.Millisecond, RetryWaitMax: time.Millisecond})
	resp, err := s.HTTPClient().Get(srv.URL + "/x")
	if err != nil {
		t.Fatal(noteErr(err))
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "ok" || n.Load() != 2 {
		t.Fatalf("got %d %q after %d attempts", resp.StatusCode, b, n.Load())
	}
	if st := s.Stats(); st.Retries != 1 || st.Requests != 1 {
		t.Errorf("stats = %+v", st)
	}
}
