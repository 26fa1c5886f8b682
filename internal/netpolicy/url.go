package netpolicy

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// maxRedirects is the number of redirects CheckRedirect follows, as many as
// net/http's default policy.
const maxRedirects = 10

// CheckURL parses raw and accepts it as a URL to send credentials to: an
// absolute URL whose scheme is https, or http to a Loopback host
// (https://www.rfc-editor.org/rfc/rfc6750#section-5.3, "bearer tokens only
// over TLS"), with a valid host and port, without user information
// ("user:password@") and without a fragment. The URL is returned as parsed;
// compare its host with CanonicalHost.
//
// Error messages say what to write instead. They show at most the scheme,
// host and port, never the path, the query or the user information, which
// may carry secrets.
func CheckURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the whole URL, query included.
		return nil, errors.New("netpolicy: the URL does not parse; write an absolute https:// URL (it is not repeated here because it may carry a secret)")
	}
	if err := checkTarget(u); err != nil {
		return nil, err
	}
	if strings.Contains(raw, "#") {
		return nil, fmt.Errorf("netpolicy: %q: the URL has a fragment (#...); remove it", origin(u))
	}
	return u, nil
}

// CheckRedirect is an http.Client CheckRedirect function for requests that
// carry credentials or fetch keys (discovery, JWKS, token endpoints). It
// refuses:
//
//   - a target that CheckURL would refuse (plain http to a host that is not
//     loopback, user information, a bad host or port);
//   - http after https anywhere in the chain, even to a loopback host: an
//     https endpoint never means a plain-text one;
//   - a target on another origin (scheme, CanonicalHost and port) when the
//     redirected request still carries a body (a 307 or 308 replays it:
//     client secrets, codes, refresh tokens) or a header other than
//     Accept, Accept-Language, Cache-Control, If-Modified-Since,
//     If-None-Match, Pragma, Referer and User-Agent (net/http keeps
//     Authorization for subdomains and every custom header such as an API
//     key);
//   - an eleventh redirect.
func CheckRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("netpolicy: stopped after %d redirects", maxRedirects)
	}
	if err := checkTarget(req.URL); err != nil {
		return fmt.Errorf("netpolicy: redirect refused: %w", err)
	}
	for _, prev := range via {
		if prev.URL.Scheme == "https" && req.URL.Scheme != "https" {
			return fmt.Errorf("netpolicy: redirect from https to %q refused; an https endpoint must not fall back to plain http", origin(req.URL))
		}
	}
	if len(via) > 0 && !sameOrigin(via[0].URL, req.URL) && carriesCredentials(req) {
		return fmt.Errorf("netpolicy: redirect from %q to %q refused: the request carries a body or credentials; configure the endpoint's final URL", origin(via[0].URL), origin(req.URL))
	}
	return nil
}

// checkTarget applies the rules CheckURL and CheckRedirect share.
func checkTarget(u *url.URL) error {
	if u.User != nil {
		return fmt.Errorf("netpolicy: %q: the URL carries user information (user:password@); remove it and configure the credentials separately", origin(u))
	}
	if u.Scheme == "" || u.Opaque != "" || u.Host == "" {
		return errors.New("netpolicy: the URL is not absolute; write it as https://host/path")
	}
	if _, err := CanonicalHost(u.Hostname()); err != nil {
		return err
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("netpolicy: %q: the port must be a number from 1 to 65535", origin(u))
		}
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if Loopback(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("netpolicy: %q: credentials are sent over https only (plain http only to a loopback host); use https://", origin(u))
	}
	return fmt.Errorf("netpolicy: %q: scheme %q is not allowed; use https://", origin(u), u.Scheme)
}

// origin returns the part of u that is safe to show: scheme, host and port.
func origin(u *url.URL) string {
	return u.Scheme + "://" + u.Host
}

func sameOrigin(a, b *url.URL) bool {
	ha, errA := CanonicalHost(a.Hostname())
	hb, errB := CanonicalHost(b.Hostname())
	return errA == nil && errB == nil && a.Scheme == b.Scheme && ha == hb && port(a) == port(b)
}

func port(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if u.Scheme == "http" {
		return "80"
	}
	return "443"
}

// carriesCredentials reports whether req has a body or a header that may
// not follow a redirect to another origin.
func carriesCredentials(req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody {
		return true
	}
	for k := range req.Header {
		switch http.CanonicalHeaderKey(k) {
		case "Accept", "Accept-Language", "Cache-Control", "If-Modified-Since",
			"If-None-Match", "Pragma", "Referer", "User-Agent":
		default:
			return true
		}
	}
	return false
}
