package session

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/authkit-go/authkit/auth"
)

func TestNewValidatesConfig(t *testing.T) {
	h := &staticHandler{}
	pw := secret("pw")
	tests := []struct {
		name     string
		h        auth.AuthenticationHandler
		cfg      Config
		wantErr  error // nil: New must succeed
		insecure bool
	}{
		{name: "hub only", cfg: Config{HubURL: "https://hub.example.com"}},
		{name: "access manager only", cfg: Config{AccessManagerURL: "https://am.example.com:8443/am/"}},
		{name: "both", cfg: Config{HubURL: "https://x.example.com/hub", AccessManagerURL: "https://x.example.com/am"}},
		{name: "loopback http", cfg: Config{HubURL: "http://127.0.0.1:3000", AccessManagerURL: "http://localhost:3001"}},
		{name: "ipv6 loopback http", cfg: Config{HubURL: "http://[::1]:3000/"}},
		{name: "nil handler", h: nilHandler, cfg: Config{HubURL: "https://hub.example.com"}, wantErr: auth.ErrInvalidConfig},
		{name: "no URL", cfg: Config{}, wantErr: auth.ErrInvalidConfig},
		{name: "relative URL", cfg: Config{HubURL: "/api"}, wantErr: auth.ErrInvalidConfig},
		{name: "other scheme", cfg: Config{HubURL: "ftp://hub.example.com"}, wantErr: auth.ErrInvalidConfig},
		{name: "no host", cfg: Config{HubURL: "https:///api"}, wantErr: auth.ErrInvalidConfig},
		{name: "unparsable", cfg: Config{HubURL: "https://hub.example.com:port:" + pw}, wantErr: auth.ErrInvalidConfig},
		{name: "user info", cfg: Config{HubURL: "https://alice:" + pw + "@hub.example.com"}, wantErr: auth.ErrInvalidConfig},
		{name: "query", cfg: Config{HubURL: "https://hub.example.com/?token=" + pw}, wantErr: auth.ErrInvalidConfig},
		{name: "bad port", cfg: Config{HubURL: "https://hub.example.com:99999"}, wantErr: auth.ErrInvalidConfig},
		{name: "same URLs", cfg: Config{HubURL: "https://x.example.com/api", AccessManagerURL: "https://X.example.com:443/api/"}, wantErr: auth.ErrInvalidConfig},
		{name: "negative retries", cfg: Config{HubURL: "https://hub.example.com", MaxRetries: -1}, wantErr: auth.ErrInvalidConfig},
		{name: "negative wait", cfg: Config{HubURL: "https://hub.example.com", RetryWaitMin: -1}, wantErr: auth.ErrInvalidConfig},
		{name: "min above max", cfg: Config{HubURL: "https://hub.example.com", RetryWaitMin: 2e9, RetryWaitMax: 1e9}, wantErr: auth.ErrInvalidConfig},
		{name: "user agent with newline", cfg: Config{HubURL: "https://hub.example.com", UserAgent: "a\r\nX-Evil: 1"}, wantErr: auth.ErrInvalidConfig},
		{name: "plain http to a remote hub", cfg: Config{HubURL: "http://hub.example.com"}, wantErr: ErrInsecureHTTP, insecure: true},
		{name: "plain http to a remote access manager", cfg: Config{HubURL: "https://hub.example.com", AccessManagerURL: "http://10.0.0.7:8080"}, wantErr: ErrInsecureHTTP, insecure: true},
		{name: "plain http, explicitly allowed", cfg: Config{HubURL: "http://hub.example.com", DangerousAllowInsecureHTTP: true}},
		{name: "loopback in capitals", cfg: Config{HubURL: "http://LOCALHOST:3000", AccessManagerURL: "http://127.0.0.1:3001"}},
		{name: "a fullwidth name that IDNA maps to localhost", cfg: Config{HubURL: "http://ｌｏｃａｌｈｏｓｔ:3000"}},
		{name: "a numeric host that is not dotted decimal", cfg: Config{HubURL: "http://127.1:3000"}, wantErr: auth.ErrInvalidConfig},
		{name: "dot segments in the base path", cfg: Config{HubURL: "https://hub.example.com/api/../admin"}, wantErr: auth.ErrInvalidConfig},
		{name: "params in the base path", cfg: Config{HubURL: "https://hub.example.com/api;v=1"}, wantErr: auth.ErrInvalidConfig},
		{name: "same URLs, one in Unicode capitals", cfg: Config{HubURL: "https://x.example.com/api", AccessManagerURL: "https://Ｘ.example.com/api"}, wantErr: auth.ErrInvalidConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hh := tt.h
			if hh == nil {
				hh = h
			} else if hh == nilHandler {
				hh = nil
			}
			s, err := New(hh, tt.cfg)
			noteErr(err)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if s == nil {
					t.Fatal("New returned nil session")
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("New error = %v, want %v", err, tt.wantErr)
			}
			if tt.insecure && !errors.Is(err, auth.ErrInvalidConfig) {
				t.Errorf("insecure error %v does not wrap auth.ErrInvalidConfig", err)
			}
			if strings.Contains(err.Error(), pw) {
				t.Errorf("error repeats a secret: %v", err)
			}
		})
	}
}

// nilHandler marks the test case that passes a nil handler.
var nilHandler auth.AuthenticationHandler = &staticHandler{}

func TestServiceOf(t *testing.T) {
	s := newSession(t, &staticHandler{}, Config{
		HubURL:           "https://hub.example.com/api",
		AccessManagerURL: "https://am.example.com:8443",
	})
	tests := []struct {
		url  string
		want service
	}{
		{"https://hub.example.com/api", serviceHub},
		{"https://hub.example.com/api/", serviceHub},
		{"https://hub.example.com/api/v1/things?x=1", serviceHub},
		{"https://HUB.Example.COM:443/api/v1", serviceHub},
		{"HTTPS://hub.example.com/api/v1", serviceHub},
		{"https://hub.example.com/apiary", serviceNone},
		{"https://hub.example.com/", serviceNone},
		{"https://hub.example.com", serviceNone},
		{"https://hub.example.com/api/../admin", serviceNone},
		{"https://hub.example.com/api/%2e%2e/admin", serviceNone},
		// Paths that some server resolves outside /api (Tomcat's ";params",
		// IIS's backslashes, a decoded separator) get nothing.
		{"https://hub.example.com/api/..;/admin", serviceNone},
		{"https://hub.example.com/api/..%5cadmin", serviceNone},
		{"https://hub.example.com/api/..%5Cadmin", serviceNone},
		{`https://hub.example.com/api\..\admin`, serviceNone},
		{"https://hub.example.com/api/..%2fadmin", serviceNone},
		{"https://hub.example.com/api/%252e%252e/admin", serviceNone},
		{"https://hub.example.com/api;x/v1", serviceNone},
		{"https://hub.example.com/api/v1.2/things", serviceHub},
		{"https://hub.example.com/api/a%20b", serviceHub},
		// The host as net/http dials it: case and the root dot do not matter.
		{"https://hub.example.com./api/v1", serviceHub},
		{"https://ＨＵＢ.example.com/api/v1", serviceHub},
		{"https://hub.example.com.evil.test/api", serviceNone},
		{"https://evil.test/hub.example.com/api", serviceNone},
		{"https://xhub.example.com/api", serviceNone},
		{"https://hub.example.com:444/api", serviceNone},
		{"https://hub.example.com:4430/api", serviceNone},
		{"http://hub.example.com/api", serviceNone},
		{"http://hub.example.com:443/api", serviceNone},
		{"wss://hub.example.com/api", serviceNone},
		{"https://am.example.com:8443/", serviceAccessManager},
		{"https://am.example.com:8443/anything", serviceAccessManager},
		{"https://am.example.com:84430/anything", serviceNone},
		{"https://am.example.com/anything", serviceNone},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			u, err := url.Parse(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.serviceOf(u); got != tt.want {
				t.Errorf("serviceOf(%s) = %v, want %v", tt.url, got, tt.want)
			}
		})
	}
}

func TestServiceOfOverlappingPaths(t *testing.T) {
	s := newSession(t, &staticHandler{}, Config{
		HubURL:           "https://x.example.com/",
		AccessManagerURL: "https://x.example.com/am",
	})
	tests := []struct {
		url  string
		want service
	}{
		{"https://x.example.com/am/roles", serviceAccessManager},
		{"https://x.example.com/am", serviceAccessManager},
		{"https://x.example.com/amx", serviceHub},
		{"https://x.example.com/things", serviceHub},
	}
	for _, tt := range tests {
		u, _ := url.Parse(tt.url)
		if got := s.serviceOf(u); got != tt.want {
			t.Errorf("serviceOf(%s) = %v, want %v", tt.url, got, tt.want)
		}
	}
}

func TestDefaults(t *testing.T) {
	tests := []struct {
		name             string
		cfg              Config
		wantMin, wantMax time.Duration
		wantRetries      int
		wantTimeout      time.Duration
	}{
		{"zero", Config{}, DefaultRetryWaitMin, DefaultRetryWaitMax, 3, DefaultAttemptTimeout},
		{"small max", Config{RetryWaitMax: 2 * time.Millisecond}, 2 * time.Millisecond, 2 * time.Millisecond, 3, DefaultAttemptTimeout},
		{"large min", Config{RetryWaitMin: time.Minute}, time.Minute, time.Minute, 3, DefaultAttemptTimeout},
		{"set", Config{RetryWaitMin: time.Second, RetryWaitMax: time.Hour, MaxRetries: 7, AttemptTimeout: -1}, time.Second, time.Hour, 7, -1},
		{"disabled", Config{MaxRetries: 7, DisableRetries: true}, DefaultRetryWaitMin, DefaultRetryWaitMax, 0, DefaultAttemptTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.HubURL = "https://hub.example.com"
			s := newSession(t, &staticHandler{}, tt.cfg)
			if s.rc.RetryWaitMin != tt.wantMin || s.rc.RetryWaitMax != tt.wantMax || s.rc.RetryMax != tt.wantRetries || s.timeout != tt.wantTimeout {
				t.Errorf("wait %v..%v, retries %d, timeout %v", s.rc.RetryWaitMin, s.rc.RetryWaitMax, s.rc.RetryMax, s.timeout)
			}
		})
	}
}

// TestServiceOfInternationalHost checks that hosts are compared in the form
// net/http dials: "strasse" is not "straße", whatever Unicode case folding
// says.
func TestServiceOfInternationalHost(t *testing.T) {
	s := newSession(t, &staticHandler{}, Config{HubURL: "https://straße.example/api"})
	for _, tt := range []struct {
		url  string
		want service
	}{
		{"https://straße.example/api/x", serviceHub},
		{"https://xn--strae-oqa.example/api/x", serviceHub},
		{"https://STRASSE.example/api/x", serviceNone},
		{"https://strasse.example/api/x", serviceNone},
	} {
		u, err := url.Parse(tt.url)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.serviceOf(u); got != tt.want {
			t.Errorf("serviceOf(%s) = %v, want %v", tt.url, got, tt.want)
		}
	}
}
