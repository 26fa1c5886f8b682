package session

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
)

func TestRedactURL(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"https://hub.example.com/api/x", "https://hub.example.com/api/x"},
		{"https://alice:hunter22@hub.example.com/x", "https://hub.example.com/x"},
		{"https://hub.example.com/x?page=2&limit=10", "https://hub.example.com/x?page=2&limit=10"},
		{"https://hub.example.com/x?access_token=abc&page=2", "https://hub.example.com/x?access_token=REDACTED&page=2"},
		{"https://hub.example.com/cb?code=abc&state=xyz", "https://hub.example.com/cb?code=REDACTED&state=xyz"},
		{"https://h/x?client_secret=s&api_key=k&X-Amz-Signature=sig&password=p&pwd=p&apikey=k", "https://h/x?client_secret=REDACTED&api_key=REDACTED&X-Amz-Signature=REDACTED&password=REDACTED&pwd=REDACTED&apikey=REDACTED"},
		{"https://h/x?%74oken=abc", "https://h/x?%74oken=REDACTED"},
		{"https://h/x?token", "https://h/x?token"},
		{"https://h/x#access_token=abc", "https://h/x"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			u, err := url.Parse(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := RedactURL(u); got != tt.want {
				t.Errorf("RedactURL = %q, want %q", got, tt.want)
			}
		})
	}
	if RedactURL(nil) != "" {
		t.Error("RedactURL(nil) is not empty")
	}
}

func TestSanitizeExcerpt(t *testing.T) {
	tok, key, pw := secret("tok"), secret("apikey"), secret("pw")
	jwt := "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
	sent := http.Header{"Authorization": {"Bearer " + tok}, "X-Api-Key": {key}, "Content-Type": {"application/json"}}
	tests := []struct {
		name, body string
		want       []string // must appear
	}{
		{"echoed header", "you sent Bearer " + tok + " which expired", []string{"you sent REDACTED which expired"}},
		{"bare token", `{"error":"bad","seen":"` + tok + `"}`, []string{`"error":"bad"`}},
		{"api key", "key " + key + " unknown", []string{"unknown"}},
		{"json field", `{"password":"` + pw + `","user":"alice"}`, []string{`"password":"REDACTED"`, `"user":"alice"`}},
		{"form field", "client_secret=" + pw + "&grant_type=password", []string{"client_secret=REDACTED", "grant_type=password"}},
		{"jwt", "token " + jwt + " bad", []string{"bad"}},
		{"harmless header values stay", "want application/json", []string{"want application/json"}},
		{"long body is cut", strings.Repeat("x", 1000) + tok, []string{"…"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := sanitizeExcerpt([]byte(tt.body), sent)
			noteErr(errors.New(got))
			for _, s := range []string{tok, key, pw, jwt, "c2lnbmF0dXJl"} {
				if strings.Contains(got, s) {
					t.Errorf("excerpt %q keeps a secret", got)
				}
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("excerpt %q lacks %q", got, w)
				}
			}
			if len(got) > excerptLimit+len("…") {
				t.Errorf("excerpt is %d bytes long", len(got))
			}
		})
	}
}

// TestLogging runs a request through a retry and a 401 replay and checks
// what the log says, and what it must not say.
func TestLogging(t *testing.T) {
	h := newEngineHandler(t, nil)
	pw, qs := secret("pw"), secret("qs")
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case n.Add(1) == 1:
			w.WriteHeader(http.StatusServiceUnavailable)
		case r.Header.Get("Authorization") == "Bearer "+h.token(1):
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, "rejected "+r.Header.Get("Authorization"))
		default:
			io.WriteString(w, "ok")
		}
	}))
	defer srv.Close()
	var lines lineBuf
	cfg := fastRetries(srv.URL + "/hub")
	cfg.Logger = capture(&lines)
	s := newSession(t, h, cfg)
	u := strings.Replace(srv.URL, "http://", "http://alice:"+pw+"@", 1) + "/hub/things?api_key=" + qs + "&page=2"
	resp, _, err := do(t, s, newReq(t, "GET", u, nil))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("Do: %v", err)
	}
	log := lines.String()
	for _, want := range []string{
		`msg="session: sending" method=GET url="http://127.0.0.1`,
		`/hub/things?api_key=REDACTED&page=2" service=hub attempt=1`,
		`msg="session: response" method=GET`,
		`status=503`,
		`msg="session: retrying" attempt=2 wait=`,
		`service=hub attempt=2`,
		`msg="session: credential rejected (401); replaying once with fresh credentials" method=GET`,
		`status=200`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	for _, secret := range []string{pw, qs, h.token(1), h.token(2), "alice"} {
		if strings.Contains(log, secret) {
			t.Errorf("log contains %q", secret)
		}
	}
}

// TestStatusErrorRedacted: a server that echoes the credential and
// secret-looking fields in its error body does not get them into the error.
func TestStatusErrorRedacted(t *testing.T) {
	tok, pw := secret("tok"), secret("pw")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		io.WriteString(w, `{"error":"upstream","auth":"`+r.Header.Get("Authorization")+`","access_token":"`+tok+`","password":"`+pw+`"}`)
	}))
	defer srv.Close()
	s := newSession(t, &staticHandler{hub: http.Header{"Authorization": {"Bearer " + tok}}}, fastRetries(srv.URL))
	_, _, err := do(t, s, newReq(t, "GET", srv.URL+"/x?token="+tok, nil))
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != 502 {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(se.Excerpt, `"error":"upstream"`) {
		t.Errorf("excerpt %q lost the harmless part", se.Excerpt)
	}
	for _, s := range []string{tok, pw} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error contains a secret: %v", err)
		}
	}
}
