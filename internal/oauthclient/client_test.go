package oauthclient

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/authtest"
	"github.com/authkit-go/authkit/internal/redact"
)

const secret = "s3cr3t-client-secret-value"

// drive advances clk by step whenever a timer is pending, until stop is
// closed: it stands in for the passing of time without sleeping through it.
func drive(t *testing.T, clk *authtest.Clock, step time.Duration) (stop func()) {
	t.Helper()
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case <-done:
				return
			default:
			}
			if clk.Pending() > 0 {
				clk.Advance(step)
			} else {
				time.Sleep(50 * time.Microsecond) // yield to the code under test; not a wait for an interval
			}
		}
	}()
	return func() { close(done); <-finished }
}

func TestPostWireFormat(t *testing.T) {
	tests := []struct {
		name      string
		style     AuthStyle
		wantAuth  string
		wantForm  url.Values
		clientID  string
		secretVal string
	}{
		{
			name:     "basic",
			style:    AuthBasic,
			clientID: "my client", secretVal: "p@ss:word",
			wantAuth: "Basic " + base64.StdEncoding.EncodeToString([]byte("my+client:p%40ss%3Aword")),
			wantForm: url.Values{"grant_type": {"client_credentials"}, "scope": {"a b"}},
		},
		{
			name:     "post",
			style:    AuthPost,
			clientID: "cli", secretVal: secret,
			wantForm: url.Values{"grant_type": {"client_credentials"}, "scope": {"a b"}, "client_id": {"cli"}, "client_secret": {secret}},
		},
		{
			name:     "none",
			style:    AuthNone,
			clientID: "public",
			wantForm: url.Values{"grant_type": {"client_credentials"}, "scope": {"a b"}, "client_id": {"public"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var requests atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				requests.Add(1)
				if r.Method != http.MethodPost {
					t.Errorf("method = %s", r.Method)
				}
				if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
					t.Errorf("Content-Type = %q", ct)
				}
				if a := r.Header.Get("Accept"); a != "application/json" {
					t.Errorf("Accept = %q", a)
				}
				if got := r.Header.Get("Authorization"); got != tt.wantAuth {
					t.Errorf("Authorization = %q, want %q", got, tt.wantAuth)
				}
				body, _ := io.ReadAll(r.Body)
				form, err := url.ParseQuery(string(body))
				if err != nil {
					t.Errorf("body is not a form: %v", err)
				}
				if !reflect.DeepEqual(form, tt.wantForm) {
					t.Errorf("form = %v, want %v", form, tt.wantForm)
				}
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, `{"access_token":"at","token_type":"Bearer","expires_in":60}`)
			}))
			defer srv.Close()
			clk := authtest.NewClock(time.Time{})
			c := New(Config{ClientID: tt.clientID, ClientSecret: auth.NewSecret(tt.secretVal), AuthStyle: tt.style, Clock: clk})
			tok, err := c.Token(context.Background(), srv.URL, url.Values{"grant_type": {"client_credentials"}, "scope": {"a b"}})
			if err != nil {
				t.Fatal(err)
			}
			if tok.AccessToken.Reveal() != "at" || !tok.Expiry.Equal(clk.Now().Add(time.Minute)) {
				t.Errorf("token = %v", tok)
			}
			if n := requests.Load(); n != 1 {
				t.Errorf("%d requests, want 1", n)
			}
		})
	}
}

// postToken is Token through the retrying Post.
func postToken(c *Client, ctx context.Context, endpoint string, form url.Values) (*auth.Token, error) {
	resp, err := c.Post(ctx, endpoint, form)
	if err != nil {
		return nil, err
	}
	return parseTokenResponse(resp.StatusCode, resp.Header, resp.Body, c.clock.Now(), nil)
}

func TestPostRetries(t *testing.T) {
	type answer struct {
		status int
		header map[string]string
		body   string
	}
	ok := answer{200, nil, `{"access_token":"at","expires_in":60}`}
	tests := []struct {
		name     string
		answers  []answer
		wantReqs int
		wantErr  func(error) bool
		wantWait time.Duration // total fake time spent waiting
	}{
		{name: "503 then ok", answers: []answer{{503, nil, "<html>down</html>"}, ok}, wantReqs: 2},
		{name: "500 server_error then ok", answers: []answer{{500, nil, `{"error":"server_error"}`}, ok}, wantReqs: 2},
		{name: "429 Retry-After honoured", answers: []answer{{429, map[string]string{"Retry-After": "7"}, ""}, ok}, wantReqs: 2, wantWait: 7 * time.Second},
		{name: "Retry-After capped", answers: []answer{{503, map[string]string{"Retry-After": "3600"}, ""}, ok}, wantReqs: 2, wantWait: defaultRetryAfterMax},
		{
			name: "gives up after max attempts", answers: []answer{{502, nil, ""}, {502, nil, ""}, {502, nil, ""}, {502, nil, ""}, ok}, wantReqs: defaultMaxAttempts,
			wantErr: func(err error) bool { var re *auth.ResponseError; return errors.As(err, &re) && re.StatusCode == 502 },
		},
		{
			name: "slow_down as 429 not retried", answers: []answer{{429, nil, `{"error":"slow_down"}`}, ok}, wantReqs: 1,
			wantErr: func(err error) bool {
				var oe *auth.OAuthError
				return errors.As(err, &oe) && oe.Code == "slow_down" && oe.StatusCode == 429
			},
		},
		{
			name: "authorization_pending as 503 not retried", answers: []answer{{503, nil, `{"error":"authorization_pending"}`}, ok}, wantReqs: 1,
			wantErr: func(err error) bool {
				var oe *auth.OAuthError
				return errors.As(err, &oe) && oe.Code == "authorization_pending"
			},
		},
		{
			name: "invalid_grant not retried", answers: []answer{{400, nil, `{"error":"invalid_grant","error_description":"Session not active"}`}, ok}, wantReqs: 1,
			wantErr: func(err error) bool { return errors.Is(err, auth.ErrInvalidGrant) },
		},
		{
			name: "401 invalid_client not retried", answers: []answer{{401, nil, `{"error":"invalid_client"}`}, ok}, wantReqs: 1,
			wantErr: func(err error) bool {
				var oe *auth.OAuthError
				return errors.As(err, &oe) && oe.Code == "invalid_client" && oe.StatusCode == 401
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				i := int(n.Add(1)) - 1
				a := tt.answers[min(i, len(tt.answers)-1)]
				for k, v := range a.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(a.status)
				io.WriteString(w, a.body)
			}))
			defer srv.Close()
			clk := authtest.NewClock(time.Time{})
			start := clk.Now()
			stop := drive(t, clk, 100*time.Millisecond)
			c := New(Config{ClientID: "c", Clock: clk})
			_, err := postToken(c, context.Background(), srv.URL, url.Values{"grant_type": {"client_credentials"}})
			stop()
			if tt.wantErr == nil && err != nil {
				t.Fatalf("err = %v", err)
			}
			if tt.wantErr != nil && !tt.wantErr(err) {
				t.Fatalf("err = %v (%T)", err, err)
			}
			if got := int(n.Load()); got != tt.wantReqs {
				t.Errorf("%d requests, want %d", got, tt.wantReqs)
			}
			if tt.wantWait > 0 {
				if waited := clk.Now().Sub(start); waited < tt.wantWait || waited > tt.wantWait+200*time.Millisecond {
					t.Errorf("waited %v, want %v", waited, tt.wantWait)
				}
			}
		})
	}
}

// Token makes one attempt: the engine is the retry loop of token requests.
// Its errors say whether they are transient, carry the server's
// Retry-After, and the token's lifetime counts from when it was sent.
func TestTokenOneAttemptTypedErrors(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		header     map[string]string
		body       string
		transient  bool
		retryAfter time.Duration
	}{
		{"503 HTML page", 503, nil, "<html>down</html>", true, 0},
		{"429 with Retry-After", 429, map[string]string{"Retry-After": "7"}, "", true, 7 * time.Second},
		{"500 server_error", 500, map[string]string{"Retry-After": "99999"}, `{"error":"server_error"}`, true, defaultRetryAfterMax},
		{"400 temporarily_unavailable", 400, nil, `{"error":"temporarily_unavailable"}`, true, 0},
		{"400 invalid_grant", 400, nil, `{"error":"invalid_grant"}`, false, 0},
		{"401 invalid_client", 401, nil, `{"error":"invalid_client"}`, false, 0},
		{"200 without access_token", 200, nil, `{"token_type":"Bearer"}`, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n.Add(1)
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			c := New(Config{ClientID: "c", Clock: authtest.NewClock(time.Time{})})
			_, err := c.Token(context.Background(), srv.URL, url.Values{"grant_type": {"client_credentials"}})
			if err == nil {
				t.Fatal("no error")
			}
			if n.Load() != 1 {
				t.Errorf("%d requests, want 1", n.Load())
			}
			if auth.IsTransient(err) != tt.transient {
				t.Errorf("IsTransient(%v) = %v, want %v", err, !tt.transient, tt.transient)
			}
			var oe *auth.OAuthError
			var re *auth.ResponseError
			got := time.Duration(-1)
			switch {
			case errors.As(err, &oe):
				got = oe.RetryAfter
			case errors.As(err, &re):
				got = re.RetryAfter
			}
			if got != tt.retryAfter {
				t.Errorf("RetryAfter = %v, want %v", got, tt.retryAfter)
			}
		})
	}
}

// The lifetime counts from when the request was sent, not from when the
// (slow) answer arrived: the token's issuer counted from its own receipt.
func TestTokenLifetimeCountsFromSend(t *testing.T) {
	clk := authtest.NewClock(time.Time{})
	sent := clk.Now()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		clk.Advance(800 * time.Millisecond) // a slow answer
		io.WriteString(w, `{"access_token":"at","expires_in":2}`)
	}))
	defer srv.Close()
	c := New(Config{ClientID: "c", Clock: clk})
	tok, err := c.Token(context.Background(), srv.URL, url.Values{"grant_type": {"client_credentials"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := sent.Add(2 * time.Second); !tok.Expiry.Equal(want) {
		t.Errorf("Expiry = %v, want %v (send time + expires_in)", tok.Expiry, want)
	}
}

func TestPostNetworkErrorRetried(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close() // the connection drops without an answer
			}
			return
		}
		io.WriteString(w, `{"access_token":"at"}`)
	}))
	defer srv.Close()
	clk := authtest.NewClock(time.Time{})
	stop := drive(t, clk, 100*time.Millisecond)
	defer stop()
	c := New(Config{ClientID: "c", Clock: clk})
	tok, err := postToken(c, context.Background(), srv.URL, url.Values{"grant_type": {"client_credentials"}})
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken.Reveal() != "at" || n.Load() != 2 {
		t.Errorf("token %v after %d requests", tok, n.Load())
	}
}

func TestPostCancelledWhileWaiting(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.WriteHeader(503)
	}))
	defer srv.Close()
	clk := authtest.NewClock(time.Time{})
	ctx, cancel := context.WithCancel(context.Background())
	c := New(Config{ClientID: "c", Clock: clk})
	errc := make(chan error, 1)
	go func() {
		_, err := postToken(c, ctx, srv.URL, url.Values{"grant_type": {"client_credentials"}})
		errc <- err
	}()
	for clk.Pending() == 0 {
		time.Sleep(50 * time.Microsecond)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if n.Load() != 1 || clk.Pending() != 0 {
		t.Errorf("%d requests, %d timers left", n.Load(), clk.Pending())
	}
}

func TestPostCancelledServerNeverAnswers(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	c := New(Config{ClientID: "c"})
	_, err := c.Token(ctx, srv.URL, url.Values{"grant_type": {"client_credentials"}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}

func TestPostNoRedirects(t *testing.T) {
	var other atomic.Int32
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { other.Add(1) }))
	defer evil.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, evil.URL, http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	c := New(Config{ClientID: "c", ClientSecret: auth.NewSecret(secret), AuthStyle: AuthPost})
	_, err := c.Token(context.Background(), srv.URL, url.Values{"grant_type": {"client_credentials"}})
	var re *auth.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("err = %v", err)
	}
	if other.Load() != 0 {
		t.Error("the form was re-sent to the redirect target")
	}
}

func TestMalformedAnswers(t *testing.T) {
	big := `{"access_token":"` + strings.Repeat("A", 10<<20) + `"}`
	tests := []struct {
		name       string
		status     int
		ctype      string
		body       string
		wantReason string
	}{
		{"html error page", 200, "text/html", "<html><body>Bad Gateway</body></html>", "body is not JSON"},
		{"html 404", 404, "text/html", "<html>Not Found</html>", "body is not JSON"},
		{"empty body", 200, "application/json", "", "empty body"},
		{"expires_in abc", 200, "application/json", `{"access_token":"at","expires_in":"abc"}`, "expires_in is not a number"},
		{"10 MB body", 200, "application/json", big, "body exceeds"},
		{"no access token", 200, "application/json", `{"token_type":"Bearer"}`, "no access_token"},
		{"access token number", 200, "application/json", `{"access_token":42}`, "access_token is a number"},
		{"array", 200, "application/json", `[1,2]`, "want a JSON object"},
		{"null", 200, "application/json", `null`, "want a JSON object"},
		{"400 without error", 400, "application/json", `{"message":"nope"}`, "HTTP status 400"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n.Add(1)
				w.Header().Set("Content-Type", tt.ctype)
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			c := New(Config{ClientID: "c", ClientSecret: auth.NewSecret(secret), AuthStyle: AuthPost, Retry: noRetry})
			_, err := c.Token(context.Background(), srv.URL, url.Values{"grant_type": {"password"}, "password": {"hunter2-password"}})
			var re *auth.ResponseError
			if !errors.As(err, &re) {
				t.Fatalf("err = %v (%T), want *auth.ResponseError", err, err)
			}
			if re.StatusCode != tt.status || !strings.Contains(re.Reason, tt.wantReason) {
				t.Errorf("err = %+v, want status %d reason %q", re, tt.status, tt.wantReason)
			}
			if len(re.Excerpt) > 4*redact.ExcerptSize || strings.Contains(err.Error(), "AAAAAAAAAAAAAAAAAAAA") {
				t.Errorf("excerpt too long or carries the token: %q", re.Excerpt)
			}
			for _, s := range []string{secret, "hunter2-password"} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error carries a secret: %v", err)
				}
			}
			if n.Load() != 1 {
				t.Errorf("%d requests", n.Load())
			}
		})
	}
}

func TestParseTokenResponse(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	unknown := now.Add(auth.DefaultUnknownLifetime) // expires_in absent or 0
	tests := []struct {
		name string
		body string
		want *auth.Token
	}{
		{"minimal", `{"access_token":"a"}`, &auth.Token{AccessToken: auth.NewSecret("a"), Expiry: unknown}},
		{"expires_in 0 is unknown, not expired", `{"access_token":"a","expires_in":0}`, &auth.Token{AccessToken: auth.NewSecret("a"), Expiry: unknown}},
		{"full", `{"access_token":"a","token_type":"Bearer","refresh_token":"r","id_token":"i","scope":"x y","expires_in":300,"refresh_expires_in":1800}`,
			&auth.Token{AccessToken: auth.NewSecret("a"), TokenType: "Bearer", RefreshToken: auth.NewSecret("r"), IDToken: auth.NewSecret("i"), Scope: "x y", Expiry: now.Add(5 * time.Minute), RefreshExpiry: now.Add(30 * time.Minute)}},
		{"expires_in string", `{"access_token":"a","expires_in":"3600"}`, &auth.Token{AccessToken: auth.NewSecret("a"), Expiry: now.Add(time.Hour)}},
		{"expires_in float", `{"access_token":"a","expires_in":1.5}`, &auth.Token{AccessToken: auth.NewSecret("a"), Expiry: now.Add(1500 * time.Millisecond)}},
		{"expires_in null", `{"access_token":"a","expires_in":null}`, &auth.Token{AccessToken: auth.NewSecret("a"), Expiry: unknown}},
		{"refresh_expires_in 0 means none", `{"access_token":"a","refresh_token":"r","refresh_expires_in":0}`, &auth.Token{AccessToken: auth.NewSecret("a"), RefreshToken: auth.NewSecret("r"), Expiry: unknown}},
		{"huge expires_in capped", `{"access_token":"a","expires_in":1e300}`, &auth.Token{AccessToken: auth.NewSecret("a"), Expiry: now.Add(maxLifetime)}},
		{"scope list", `{"access_token":"a","scope":["x","y"]}`, &auth.Token{AccessToken: auth.NewSecret("a"), Scope: "x y", Expiry: unknown}},
		{"extra kept", `{"access_token":"a","session_state":"s","not-before-policy":0}`, &auth.Token{AccessToken: auth.NewSecret("a"), Extra: map[string]auth.Secret{"session_state": auth.NewSecret("s"), "not-before-policy": auth.NewSecret("0")}, Expiry: unknown}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseTokenResponse(200, http.Header{}, []byte(tt.body), now, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func TestParseOAuthErrors(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   auth.OAuthError
	}{
		{"invalid_grant", 400, `{"error":"invalid_grant","error_description":"Session not active","error_uri":"https://e/x"}`, auth.OAuthError{Code: "invalid_grant", Description: "Session not active", URI: "https://e/x", StatusCode: 400}},
		{"error in a 200", 200, `{"error":"access_denied"}`, auth.OAuthError{Code: "access_denied", StatusCode: 200}},
		{"description with a token", 400, `{"error":"invalid_grant","error_description":"token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl is spent"}`, auth.OAuthError{Code: "invalid_grant", Description: "token [redacted] is spent", StatusCode: 400}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseTokenResponse(tt.status, nil, []byte(tt.body), time.Now(), nil)
			var oe *auth.OAuthError
			if !errors.As(err, &oe) {
				t.Fatalf("err = %v", err)
			}
			if *oe != tt.want {
				t.Errorf("got %+v, want %+v", *oe, tt.want)
			}
		})
	}
}

func TestRefreshedKeepsOldRefreshToken(t *testing.T) {
	exp := time.Date(2030, 1, 2, 0, 0, 0, 0, time.UTC)
	old := &auth.Token{AccessToken: auth.NewSecret("a1"), RefreshToken: auth.NewSecret("r1"), RefreshExpiry: exp}
	tests := []struct {
		name     string
		fresh    *auth.Token
		wantRT   string
		wantRExp time.Time
	}{
		{"omitted", &auth.Token{AccessToken: auth.NewSecret("a2")}, "r1", exp},
		{"rotated", &auth.Token{AccessToken: auth.NewSecret("a2"), RefreshToken: auth.NewSecret("r2")}, "r2", time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Refreshed(old, tt.fresh)
			if got.RefreshToken.Reveal() != tt.wantRT || !got.RefreshExpiry.Equal(tt.wantRExp) {
				t.Errorf("got %q %v", got.RefreshToken, got.RefreshExpiry)
			}
		})
	}
}

func TestExcerptRedacts(t *testing.T) {
	body := []byte("<html>\n<b>error</b> access_token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abc refresh=8xLOxBtZp8Q2Rm1lYm9n</html>")
	got := redact.Excerpt(body, nil)
	if strings.Contains(got, "eyJ") || strings.Contains(got, "8xLOxBtZp8Q2") || strings.ContainsAny(got, "\n\r") {
		t.Errorf("excerpt = %q", got)
	}
	if !strings.Contains(got, "error") {
		t.Errorf("excerpt lost the readable part: %q", got)
	}
}

func TestParseDeviceAuthResponse(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		body    string
		want    *DeviceAuth
		wantErr string
	}{
		{"full", `{"device_code":"dc","user_code":"ABCD-EFGH","verification_uri":"https://v","verification_uri_complete":"https://v?c=ABCD-EFGH","expires_in":600,"interval":7}`,
			&DeviceAuth{DeviceCode: auth.NewSecret("dc"), UserCode: "ABCD-EFGH", VerificationURI: "https://v", VerificationURIComplete: "https://v?c=ABCD-EFGH", Expiry: now.Add(10 * time.Minute), Interval: 7 * time.Second}, ""},
		{"google spelling, string numbers", `{"device_code":"dc","user_code":"U","verification_url":"https://v","expires_in":"600"}`,
			&DeviceAuth{DeviceCode: auth.NewSecret("dc"), UserCode: "U", VerificationURI: "https://v", Expiry: now.Add(10 * time.Minute)}, ""},
		{"no device code", `{"user_code":"U","verification_uri":"https://v","expires_in":600}`, nil, "no device_code"},
		{"no expires_in", `{"device_code":"dc","user_code":"U","verification_uri":"https://v"}`, nil, "no expires_in"},
		{"interval abc", `{"device_code":"dc","user_code":"U","verification_uri":"https://v","expires_in":600,"interval":"abc"}`, nil, "interval is not a number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseDeviceAuthResponse(200, http.Header{}, []byte(tt.body), now, nil)
			if tt.wantErr != "" {
				var re *auth.ResponseError
				if !errors.As(err, &re) || !strings.Contains(re.Reason, tt.wantErr) {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v", got)
			}
			if s := fmt.Sprintf("%+v %#v", got, got); strings.Contains(s, `"dc"`) || strings.Contains(s, ":dc") {
				t.Errorf("printing shows the device code: %s", s)
			}
		})
	}
}

func FuzzParseTokenResponse(f *testing.F) {
	for _, s := range []string{
		`{"access_token":"a","expires_in":"3600","scope":["x"]}`,
		`{"error":"invalid_grant"}`,
		`<html></html>`,
		``,
		`{"access_token":"a","expires_in":-1}`,
		`{"access_token":"a","expires_in":1e400}`,
		`{"access_token":"a","refresh_expires_in":"1e9999"}`,
	} {
		f.Add(200, []byte(s))
		f.Add(400, []byte(s))
	}
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		tok, err := parseTokenResponse(status, http.Header{}, body, now, nil)
		if (tok == nil) == (err == nil) {
			t.Fatalf("token %v and error %v", tok, err)
		}
		if err != nil {
			var re *auth.ResponseError
			var oe *auth.OAuthError
			if !errors.As(err, &re) && !errors.As(err, &oe) {
				t.Fatalf("untyped error %T: %v", err, err)
			}
			if re != nil && len(re.Excerpt) > 4*redact.ExcerptSize {
				t.Fatalf("excerpt of %d bytes", len(re.Excerpt))
			}
			return
		}
		if tok.AccessToken.Reveal() == "" {
			t.Fatal("token without access token")
		}
		if !tok.Expiry.IsZero() && (tok.Expiry.Before(now) || tok.Expiry.After(now.Add(maxLifetime))) {
			t.Fatalf("expiry %v out of range", tok.Expiry)
		}
	})
}

// A token of a type other than Bearer is a typed error, not sent as Bearer
// (https://www.rfc-editor.org/rfc/rfc6749#section-7.1).
func TestTokenTypeMustBeBearer(t *testing.T) {
	for _, tt := range []struct {
		typ string
		ok  bool
	}{{"Bearer", true}, {"bearer", true}, {"BEARER", true}, {"", true}, {"mac", false}, {"DPoP", false}, {"N_A", false}} {
		body := `{"access_token":"a","token_type":"` + tt.typ + `"}`
		_, err := parseTokenResponse(200, http.Header{}, []byte(body), time.Now(), nil)
		if tt.ok != (err == nil) || !tt.ok && !errors.Is(err, auth.ErrUnsupportedTokenType) {
			t.Errorf("token_type %q: err = %v", tt.typ, err)
		}
	}
}

// TestPostRetryMakesANewAssertion: a retried Post (a revocation after a
// 503) carries a new client assertion: the first one's jti is spent.
func TestPostRetryMakesANewAssertion(t *testing.T) {
	var (
		mu   sync.Mutex
		seen []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		mu.Lock()
		seen = append(seen, r.PostForm.Get("client_assertion"))
		n := len(seen)
		mu.Unlock()
		if n == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	made := 0
	c := New(Config{ClientID: "c", AuthStyle: AuthAssertion,
		Assertion: func(context.Context, string) (auth.Secret, error) {
			made++
			return auth.NewSecret(fmt.Sprintf("assertion-%d", made)), nil
		},
		Retry: func(attempt, status int, wait time.Duration, err error) (time.Duration, bool) { return 0, attempt < 2 },
	})
	resp, err := c.Post(context.Background(), srv.URL+"/revoke", url.Values{"token": {"t"}})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("Post: %v", err)
	}
	if len(seen) != 2 || seen[0] == seen[1] {
		t.Errorf("assertions sent %q, want a new one for the retry", seen)
	}
}
