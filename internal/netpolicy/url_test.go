package netpolicy

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestCheckURL(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		wantErr string // substring of the error; "" means accepted
		secret  string // must not appear in the error
	}{
		{name: "https", raw: "https://idp.example/token"},
		{name: "https with query", raw: "https://host/p?secret=abc"},
		{name: "upper-case scheme", raw: "HTTPS://idp.example/"},
		{name: "http to localhost with port", raw: "http://localhost:8080/x"},
		{name: "http to upper-case localhost", raw: "http://LOCALHOST/"},
		{name: "http to a localhost subdomain (DNS decides where it goes)", raw: "http://app.localhost/cb", wantErr: "https only"},
		{name: "http to IPv6 loopback", raw: "http://[::1]:8080/"},
		{name: "http to 127/8", raw: "http://127.0.0.2/"},
		{name: "https to an IDN", raw: "https://straße.example/"},
		{name: "http to a public host", raw: "http://example.com/", wantErr: "https only"},
		{name: "http with query keeps it out of the error", raw: "http://host/p?secret=abc", wantErr: "https only", secret: "abc"},
		{name: "http to a name starting with loopback digits", raw: "http://127.0.0.1.nip.io/", wantErr: "https only"},
		{name: "http to localhost as a label", raw: "http://localhost.example.com/", wantErr: "https only"},
		{name: "http to unspecified address", raw: "http://0.0.0.0:8080/", wantErr: "https only"},
		{name: "http to short IPv4", raw: "http://127.1/", wantErr: "four decimal numbers"},
		{name: "ftp", raw: "ftp://host/file", wantErr: `scheme "ftp"`},
		{name: "relative", raw: "/token", wantErr: "not absolute"},
		{name: "host without scheme", raw: "idp.example/token", wantErr: "not absolute"},
		{name: "opaque", raw: "https:idp.example?secret=abc", wantErr: "not absolute", secret: "abc"},
		{name: "userinfo", raw: "https://user:pw@host/", wantErr: "user information", secret: "pw"},
		{name: "user only", raw: "https://tok3n@host/", wantErr: "user information", secret: "tok3n"},
		{name: "fragment", raw: "https://host/p?secret=abc#frag", wantErr: "fragment", secret: "abc"},
		{name: "empty fragment", raw: "https://host/p#", wantErr: "fragment"},
		{name: "unparsable keeps the query out", raw: "https://host/%zz?secret=abc", wantErr: "does not parse", secret: "abc"},
		{name: "control character", raw: "https://host/\n?secret=abc", wantErr: "does not parse", secret: "abc"},
		{name: "empty host", raw: "https://:443/", wantErr: "is empty"},
		{name: "port zero", raw: "https://host:0/", wantErr: "port"},
		{name: "port too large", raw: "https://host:65536/", wantErr: "port"},
		{name: "invalid host", raw: "https://a..b/", wantErr: "empty label"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := CheckURL(tt.raw)
			if tt.wantErr == "" {
				if err != nil || u == nil {
					t.Fatalf("CheckURL(%q) = %v, %v; want accepted", tt.raw, u, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("CheckURL(%q) accepted, want an error containing %q", tt.raw, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
			if tt.secret != "" && strings.Contains(err.Error(), tt.secret) {
				t.Errorf("error %q repeats the secret %q", err, tt.secret)
			}
		})
	}
}

func TestCheckRedirect(t *testing.T) {
	get := func(raw string) *http.Request {
		return httptest.NewRequest(http.MethodGet, raw, nil)
	}
	withHeader := func(r *http.Request, k, v string) *http.Request {
		r.Header.Set(k, v)
		return r
	}
	post := httptest.NewRequest(http.MethodPost, "https://evil.example/token", strings.NewReader("client_secret=s3cret"))
	chain := func(n int) []*http.Request {
		via := make([]*http.Request, n)
		for i := range via {
			via[i] = get("https://idp.example/")
		}
		return via
	}
	tests := []struct {
		name    string
		req     *http.Request
		via     []*http.Request
		wantErr string // "" means followed
	}{
		{name: "https to https", req: get("https://idp.example/b"), via: chain(1)},
		{name: "https to https on another origin without credentials", req: withHeader(get("https://cdn.example/jwks"), "Accept", "application/json"), via: chain(1)},
		{name: "http to http on loopback", req: get("http://localhost:8080/b"), via: []*http.Request{get("http://127.0.0.1:8080/a")}},
		{name: "http loopback to https", req: get("https://idp.example/"), via: []*http.Request{get("http://localhost/")}},
		{name: "tenth redirect", req: get("https://idp.example/"), via: chain(9)},
		{name: "eleventh redirect", req: get("https://idp.example/"), via: chain(10), wantErr: "10 redirects"},
		{name: "https to http on a public host", req: get("http://idp.example/"), via: chain(1), wantErr: "https only"},
		{name: "https to http on loopback", req: get("http://localhost/"), via: chain(1), wantErr: "from https"},
		{name: "https earlier in the chain to http on loopback", req: get("http://127.0.0.1/"), via: []*http.Request{get("https://idp.example/"), get("http://localhost/")}, wantErr: "from https"},
		{name: "http loopback to http public", req: get("http://evil.example/"), via: []*http.Request{get("http://localhost/")}, wantErr: "https only"},
		{name: "to another scheme", req: get("ftp://idp.example/"), via: chain(1), wantErr: "scheme"},
		{name: "to userinfo", req: get("https://u:p@idp.example/"), via: chain(1), wantErr: "user information"},
		{name: "body to another origin", req: post, via: chain(1), wantErr: "carries a body"},
		{name: "Authorization to a subdomain", req: withHeader(get("https://x.idp.example/"), "Authorization", "Bearer t"), via: chain(1), wantErr: "carries a body or credentials"},
		{name: "API key header to another port", req: withHeader(get("https://idp.example:8443/"), "X-Api-Key", "k"), via: chain(1), wantErr: "carries a body or credentials"},
		{name: "Authorization on the same origin", req: withHeader(get("https://IDP.example:443/b"), "Authorization", "Bearer t"), via: chain(1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckRedirect(tt.req, tt.via)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckRedirect refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("CheckRedirect = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestCheckRedirectWithClient runs CheckRedirect inside net/http's redirect
// loop: a token endpoint answering 307 to another origin must not receive
// the replayed body, and the error must not repeat the secret.
func TestCheckRedirectWithClient(t *testing.T) {
	var leaked bool
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked = true
	}))
	defer other.Close()
	// Same host, another port: another origin that is still loopback.
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/token", http.StatusTemporaryRedirect)
	}))
	defer idp.Close()

	client := &http.Client{CheckRedirect: CheckRedirect}
	resp, err := client.Post(idp.URL+"/token", "application/x-www-form-urlencoded", strings.NewReader("client_secret=s3cret"))
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		t.Fatal("the 307 to another origin was followed")
	}
	var uerr *url.Error
	if !errors.As(err, &uerr) || !strings.Contains(err.Error(), "carries a body") {
		t.Fatalf("error = %v, want the CheckRedirect refusal", err)
	}
	if leaked {
		t.Fatal("the other origin received the request")
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("error %q repeats the body", err)
	}
}
