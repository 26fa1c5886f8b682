package session

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestReauthenticateAfter401(t *testing.T) {
	tests := []struct {
		name        string
		method      string
		body        func() io.Reader
		rejectAll   bool // else only the first token is rejected
		wantStatus  int
		wantHits    int
		wantFetches int64
		wantReauths int64
	}{
		{"401 once, one refresh, success", http.MethodGet, nil, false, 200, 2, 2, 1},
		{"401 twice goes back to the caller", http.MethodGet, nil, true, 401, 2, 2, 1},
		{"POST body replayed intact", http.MethodPost, func() io.Reader { return strings.NewReader(`{"name":"x"}`) }, false, 200, 2, 2, 1},
		{"body that cannot be rewound is not replayed", http.MethodPost, func() io.Reader { return io.MultiReader(strings.NewReader(`{"name":"x"}`)) }, false, 401, 1, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newEngineHandler(t, nil)
			sn := &seen{}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got := sn.record(r)
				if tt.body != nil && got.body != `{"name":"x"}` {
					t.Errorf("server got body %q", got.body)
				}
				if tt.rejectAll || got.header.Get("Authorization") == "Bearer "+h.token(1) {
					w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
					w.WriteHeader(http.StatusUnauthorized)
					io.WriteString(w, "token rejected")
					return
				}
				io.WriteString(w, "ok")
			}))
			defer srv.Close()
			s := newSession(t, h, Config{HubURL: srv.URL})
			var body io.Reader
			if tt.body != nil {
				body = tt.body()
			}
			resp, _, err := do(t, s, newReq(t, tt.method, srv.URL+"/things", body))
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			reqs := sn.all()
			if len(reqs) != tt.wantHits {
				t.Fatalf("server saw %d requests, want %d", len(reqs), tt.wantHits)
			}
			if got := reqs[0].header.Get("Authorization"); got != "Bearer "+h.token(1) {
				t.Errorf("first attempt sent %q", redactForTest(got))
			}
			if len(reqs) > 1 {
				if got := reqs[1].header.Get("Authorization"); got != "Bearer "+h.token(2) {
					t.Errorf("replay sent %q, want the fresh token", redactForTest(got))
				}
			}
			if n := h.fetches.Load(); n != tt.wantFetches {
				t.Errorf("token fetches = %d, want %d", n, tt.wantFetches)
			}
			if n := s.Stats().Reauthentications; n != tt.wantReauths {
				t.Errorf("Reauthentications = %d, want %d", n, tt.wantReauths)
			}
			if n := h.Stats().Invalidations; n < 1 {
				t.Errorf("engine saw %d invalidations, want at least 1", n)
			}
		})
	}
}

// TestConcurrent401OneFetch: many requests rejected at once cause one
// new token fetch, not one each.
func TestConcurrent401OneFetch(t *testing.T) {
	const n = 8
	h := newEngineHandler(t, nil)
	var arrived sync.WaitGroup
	arrived.Add(n)
	var oldSeen atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "Bearer "+h.token(1) {
			if oldSeen.Add(1) <= n {
				arrived.Done()
				arrived.Wait() // every request holds the old token before any is rejected
			}
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	if err := h.Authenticate(t.Context()); err != nil { // token 1
		t.Fatal(err)
	}
	s := newSession(t, h, Config{HubURL: srv.URL})
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			resp, _, err := do(t, s, newReq(t, http.MethodGet, srv.URL+"/x", nil))
			if err != nil {
				t.Error(err)
				return
			}
			if resp.StatusCode != 200 {
				t.Errorf("status %d", resp.StatusCode)
			}
		})
	}
	wg.Wait()
	if got := h.fetches.Load(); got != 2 {
		t.Errorf("token fetches = %d, want 2 (the first token and one after the 401s)", got)
	}
	if got := s.Stats().Reauthentications; got != n {
		t.Errorf("Reauthentications = %d, want %d", got, n)
	}
}

// TestNo401ReplayWithoutChange: a handler whose credential does not change
// (API keys) gets the 401 back at once, told which value was rejected.
func TestNo401ReplayWithoutChange(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer srv.Close()
	key := secret("apikey")
	h := &staticHandler{hub: http.Header{"X-Api-Key-Id": {"id-1"}, "X-Api-Key": {key}}}
	s := newSession(t, h, Config{HubURL: srv.URL, RetryWaitMin: time.Millisecond, RetryWaitMax: time.Millisecond})
	resp, _, err := do(t, s, newReq(t, http.MethodGet, srv.URL, nil))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 401 || hits.Load() != 1 {
		t.Fatalf("status %d after %d requests, want 401 after 1", resp.StatusCode, hits.Load())
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.invalidated) != 2 || !strings.Contains(strings.Join(h.invalidated, " "), key) {
		t.Errorf("Invalidate got %d values, want the 2 values sent", len(h.invalidated))
	}
}
