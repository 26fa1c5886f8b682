package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The environment interop/run.sh sets.
const (
	envDexIssuer  = "AUTHKIT_DEX_ISSUER"
	envOIDCIssuer = "AUTHKIT_OIDC_ISSUER"
)

// The user and clients configured in interop/dex/config.yaml.in and
// interop/oidc/server.mjs.
const (
	userLogin    = "alice"
	userEmail    = "alice@example.com"
	userPassword = "password"

	dexConfidentialID     = "authkit-confidential"
	dexConfidentialSecret = "authkit-confidential-secret"
	dexPublicID           = "authkit-public"

	oidcCCID             = "authkit-cc"
	oidcCCSecret         = "authkit-cc-secret"
	oidcCCPostID         = "authkit-cc-post"
	oidcCCPostSecret     = "authkit-cc-post-secret"
	oidcDeviceID         = "authkit-device"
	oidcDeviceSecret     = "authkit-device-secret"
	oidcDevicePublicID   = "authkit-device-public"
	deviceCodeGrantType  = "urn:ietf:params:oauth:grant-type:device_code"
	testTimeout          = 60 * time.Second
	providerPollInterval = 5 * time.Second
)

// issuer returns the issuer named by env, or skips the test with the command
// that runs it.
func issuer(t testing.TB, env string) string {
	t.Helper()
	v := os.Getenv(env)
	if v == "" {
		t.Skipf("%s is not set: run the interop tests against real providers with `bash interop/run.sh`", env)
	}
	return strings.TrimSuffix(v, "/")
}

func dexIssuer(t testing.TB) string  { return issuer(t, envDexIssuer) }
func oidcIssuer(t testing.TB) string { return issuer(t, envOIDCIssuer) }

// testContext is a context that ends with the test or after testTimeout.
func testContext(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// discovery is the part of an OpenID Provider's metadata the tests use
// (https://openid.net/specs/openid-connect-discovery-1_0.html#ProviderMetadata).
type discovery struct {
	Issuer                      string   `json:"issuer"`
	AuthorizationEndpoint       string   `json:"authorization_endpoint"`
	TokenEndpoint               string   `json:"token_endpoint"`
	DeviceAuthorizationEndpoint string   `json:"device_authorization_endpoint"`
	JWKSURI                     string   `json:"jwks_uri"`
	UserinfoEndpoint            string   `json:"userinfo_endpoint"`
	GrantTypesSupported         []string `json:"grant_types_supported"`
	IDTokenSigningAlgs          []string `json:"id_token_signing_alg_values_supported"`
	TokenEndpointAuthMethods    []string `json:"token_endpoint_auth_methods_supported"`
}

// discover fetches the issuer's discovery document.
func discover(t testing.TB, iss string) discovery {
	t.Helper()
	var d discovery
	resp := getJSON(t, iss+"/.well-known/openid-configuration", &d)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("discovery of %s: HTTP %d", iss, resp.StatusCode)
	}
	return d
}

// getJSON GETs u and decodes a JSON body into v.
func getJSON(t testing.TB, u string, v any) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(testContext(t), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: HTTP %d, body is not JSON: %v: %.200q", u, resp.StatusCode, err, body)
	}
	return resp
}

// tokenAnswer is a token endpoint's answer, success (RFC 6749 §5.1) or error
// (§5.2), as the provider sent it.
type tokenAnswer struct {
	Status int `json:"-"`

	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	IDToken      string `json:"id_token"`
	Scope        string `json:"scope"`

	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`

	// Device authorization (RFC 8628 §3.2).
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
	Interval                int    `json:"interval"`
}

// postForm posts form to endpoint, with HTTP Basic client authentication if
// basicID is set, and decodes the JSON answer, whatever the status.
func postForm(t testing.TB, endpoint string, form url.Values, basicID, basicSecret string) tokenAnswer {
	t.Helper()
	req, err := http.NewRequestWithContext(testContext(t), http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if basicID != "" {
		req.SetBasicAuth(url.QueryEscape(basicID), url.QueryEscape(basicSecret))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", endpoint, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("POST %s: %v", endpoint, err)
	}
	var a tokenAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatalf("POST %s: HTTP %d, body is not JSON: %v: %.300q", endpoint, resp.StatusCode, err, body)
	}
	a.Status = resp.StatusCode
	return a
}

// postFormRaw posts form to endpoint and decodes the JSON answer into v; it
// returns the HTTP status.
func postFormRaw(t testing.TB, endpoint string, form url.Values, basicID, basicSecret string, v any) int {
	t.Helper()
	req, err := http.NewRequestWithContext(testContext(t), http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicID != "" {
		req.SetBasicAuth(url.QueryEscape(basicID), url.QueryEscape(basicSecret))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", endpoint, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("POST %s: HTTP %d, body is not JSON: %v", endpoint, resp.StatusCode, err)
	}
	return resp.StatusCode
}

// redact shortens a credential for a failure message.
func redact(s string) string {
	if len(s) > 16 {
		return s[:12] + "...(redacted)"
	}
	return s
}

// browser is a person at a browser without JavaScript: it follows
// redirects, keeps cookies and submits forms.
type browser struct {
	t      testing.TB
	client *http.Client
}

func newBrowser(t testing.TB) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, client: &http.Client{Jar: jar, Timeout: 20 * time.Second}}
}

// page is a fetched HTML page.
type page struct {
	URL    *url.URL
	Status int
	Body   string
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL.Redacted(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL.Redacted(), err)
	}
	return page{URL: resp.Request.URL, Status: resp.StatusCode, Body: string(body)}
}

// get loads u, following redirects.
func (b *browser) get(u string) page {
	b.t.Helper()
	req, err := http.NewRequestWithContext(testContext(b.t), http.MethodGet, u, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

// submit fills the first form of p whose action matches actionRE (any form
// if actionRE is nil): the form's own inputs, with values overridden or added
// by set; it posts the form and follows the redirects.
func (b *browser) submit(p page, actionRE *regexp.Regexp, set map[string]string) page {
	b.t.Helper()
	f, ok := findForm(p, actionRE)
	if !ok {
		b.t.Fatalf("no form (action matching %v) on %s (HTTP %d): %.800s", actionRE, p.URL.Redacted(), p.Status, p.Body)
	}
	for k, v := range set {
		f.values.Set(k, v)
	}
	req, err := http.NewRequestWithContext(testContext(b.t), f.method, f.action.String(), strings.NewReader(f.values.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

type form struct {
	method string
	action *url.URL
	values url.Values
}

var (
	formRE  = regexp.MustCompile(`(?is)<form\b([^>]*)>(.*?)</form>`)
	inputRE = regexp.MustCompile(`(?is)<input\b([^>]*)>`)
	attrRE  = regexp.MustCompile(`(?is)([a-z_:-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')`)
)

func attrs(s string) map[string]string {
	m := map[string]string{}
	for _, a := range attrRE.FindAllStringSubmatch(s, -1) {
		v := a[2]
		if v == "" {
			v = a[3]
		}
		m[strings.ToLower(a[1])] = html.UnescapeString(v)
	}
	return m
}

// findForm parses the first form of p whose action matches actionRE.
func findForm(p page, actionRE *regexp.Regexp) (form, bool) {
	for _, m := range formRE.FindAllStringSubmatch(p.Body, -1) {
		fa := attrs(m[1])
		action := fa["action"]
		if actionRE != nil && !actionRE.MatchString(action) {
			continue
		}
		u, err := p.URL.Parse(action)
		if err != nil {
			continue
		}
		method := strings.ToUpper(fa["method"])
		if method == "" {
			method = http.MethodGet
		}
		vals := url.Values{}
		for _, in := range inputRE.FindAllStringSubmatch(m[2], -1) {
			ia := attrs(in[1])
			if ia["name"] == "" || ia["type"] == "submit" || ia["type"] == "button" {
				continue
			}
			vals.Set(ia["name"], ia["value"])
		}
		return form{method: method, action: u, values: vals}, true
	}
	return form{}, false
}

// TestDiscovery checks that both providers answer their discovery documents
// with the endpoints the handlers rely on: it is the smoke test of run.sh.
func TestDiscovery(t *testing.T) {
	tests := []struct {
		name       string
		issuer     func(testing.TB) string
		wantGrants []string
	}{
		{"dex", dexIssuer, []string{"password", "refresh_token", deviceCodeGrantType, "authorization_code"}},
		{"oidc-provider", oidcIssuer, []string{"client_credentials", "refresh_token", deviceCodeGrantType, "authorization_code"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iss := tt.issuer(t)
			d := discover(t, iss)
			if d.Issuer != iss {
				t.Errorf("issuer = %q, want %q", d.Issuer, iss)
			}
			for _, e := range []struct{ name, v string }{
				{"token_endpoint", d.TokenEndpoint},
				{"device_authorization_endpoint", d.DeviceAuthorizationEndpoint},
				{"jwks_uri", d.JWKSURI},
				{"authorization_endpoint", d.AuthorizationEndpoint},
			} {
				if !strings.HasPrefix(e.v, iss+"/") {
					t.Errorf("%s = %q, want a URL below %s", e.name, e.v, iss)
				}
			}
			have := map[string]bool{}
			for _, g := range d.GrantTypesSupported {
				have[g] = true
			}
			for _, g := range tt.wantGrants {
				if !have[g] {
					t.Errorf("grant_types_supported = %v, missing %q", d.GrantTypesSupported, g)
				}
			}
			var jwks struct {
				Keys []map[string]any `json:"keys"`
			}
			getJSON(t, d.JWKSURI, &jwks)
			if len(jwks.Keys) == 0 {
				t.Errorf("JWKS at %s has no keys", d.JWKSURI)
			}
		})
	}
}

// mustf fails the test now if err is not nil.
func mustf(t testing.TB, err error, format string, args ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", fmt.Sprintf(format, args...), err)
	}
}
