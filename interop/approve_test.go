package interop

import (
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// approveDex approves a device code at Dex as a person would: it opens the
// verification page, submits the user code, logs in on Dex's password form
// and follows the redirects to /device/callback, whose page completes the
// request (https://dexidp.io/docs/guides/device-flow/).
//
// Dex quirk: for a confidential client Dex redirects to the relative
// "/device/callback", which a browser resolves against the host, not the
// issuer; with an issuer that has a path (ours is <host>/dex) that page is
// a 404. A person would then open <issuer>/device/callback with the same
// query, and so does approveDex. Public clients get the absolute URL.
func approveDex(t testing.TB, issuer, verificationURI, userCode string) {
	t.Helper()
	b := newBrowser(t)
	p := b.get(verificationURI)
	if p.Status != 200 {
		t.Fatalf("dex verification page %s: HTTP %d", verificationURI, p.Status)
	}
	// device.html posts user_code to /device/auth/verify_code, which
	// redirects to /auth?... and, with the local connector only, on to the
	// password form.
	p = b.submit(p, regexp.MustCompile(`/device/auth/verify_code`), map[string]string{"user_code": userCode})
	if _, ok := findForm(p, regexp.MustCompile(`/device/auth/verify_code`)); ok {
		t.Fatalf("dex rejected user code %q: %s (HTTP %d)", userCode, p.URL.Redacted(), p.Status)
	}
	if !strings.Contains(p.Body, `name="password"`) {
		// Several connectors: pick the local one as IDP.md says.
		u := *p.URL
		q := u.Query()
		q.Set("connector_id", "local")
		u.RawQuery = q.Encode()
		p = b.get(u.String())
	}
	p = b.submit(p, nil, map[string]string{"login": userEmail, "password": userPassword})
	if iss, err := url.Parse(issuer); err == nil && p.Status == 404 && p.URL.Path == "/device/callback" && iss.Path != "" {
		t.Logf("dex redirected to %s, outside the issuer %s; opening %s/device/callback", p.URL.Path, issuer, issuer)
		p = b.get(issuer + "/device/callback?" + p.URL.RawQuery)
	}
	if p.Status != 200 || !strings.Contains(p.URL.Path, "/device/callback") || !strings.Contains(p.Body, "Login Successful") {
		t.Fatalf("dex login ended at %s (HTTP %d), want the /device/callback page: %.600s", p.URL.Redacted(), p.Status, p.Body)
	}
}

// approveOIDC approves a device code at oidc-provider as a person would: it
// opens the device page, submits the user code with the page's xsrf token,
// confirms, logs in on the interaction form of server.mjs and follows the
// redirects (consent is granted by server.mjs) to the success page.
func approveOIDC(t testing.TB, verificationURI, userCode string) {
	t.Helper()
	b := newBrowser(t)
	p := b.get(verificationURI)
	if p.Status != 200 {
		t.Fatalf("oidc-provider device page %s: HTTP %d", verificationURI, p.Status)
	}
	// The input form (op.deviceInputForm) carries xsrf and user_code.
	if _, ok := findForm(p, nil); ok && !strings.Contains(p.Body, `name="confirm"`) {
		p = b.submit(p, nil, map[string]string{"user_code": userCode})
	}
	// The confirmation form (op.deviceConfirmForm) carries xsrf, user_code
	// and confirm=yes.
	if !strings.Contains(p.Body, `name="confirm"`) {
		t.Fatalf("oidc-provider did not ask to confirm user code %q: %s (HTTP %d): %.600s", userCode, p.URL.Redacted(), p.Status, p.Body)
	}
	p = b.submit(p, nil, nil)
	if !strings.Contains(p.URL.Path, "/interaction/") {
		t.Fatalf("oidc-provider confirmation ended at %s (HTTP %d), want the login interaction: %.600s", p.URL.Redacted(), p.Status, p.Body)
	}
	p = b.submit(p, regexp.MustCompile(`/login$`), map[string]string{"login": userLogin, "password": userPassword})
	if p.Status != 200 || !strings.Contains(p.Body, "Sign-in Success") {
		t.Fatalf("oidc-provider login ended at %s (HTTP %d), want the success page: %.600s", p.URL.Redacted(), p.Status, p.Body)
	}
}
