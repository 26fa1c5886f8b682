package session

import (
	"net/url"
	"strings"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/internal/netpolicy"
)

// service names a service of the platform that receives credentials.
type service uint8

const (
	serviceNone service = iota
	serviceHub
	serviceAccessManager
)

// String returns the name used in logs and errors.
func (s service) String() string {
	switch s {
	case serviceHub:
		return "hub"
	case serviceAccessManager:
		return string(auth.ServiceAccessManager)
	}
	return "none"
}

// auth returns the service as package auth names it.
func (s service) auth() auth.Service {
	if s == serviceHub {
		return auth.ServiceHub
	}
	return auth.ServiceAccessManager
}

// origin is a parsed base URL: credentials for its service go only to URLs
// with exactly this scheme, host and port whose path lies under path.
type origin struct {
	svc    service
	scheme string // "https" or "http"
	host   string // netpolicy.CanonicalHost form
	port   string // explicit or the scheme's default
	path   string // escaped as sent, without a trailing slash; "" for the root
}

// parseOrigin parses a configured base URL. field names the Config field in
// errors. The URL's text is never repeated in an error, since a malformed
// URL may hold a secret.
func parseOrigin(raw string, svc service, field string, allowInsecure bool) (origin, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return origin{}, configError("%s is not a URL", field)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return origin{}, configError("%s must be an absolute https:// URL, got scheme %q", field, u.Scheme)
	}
	if u.Opaque != "" || u.Hostname() == "" {
		return origin{}, configError("%s must name a host", field)
	}
	if u.User != nil {
		return origin{}, configError("%s must not carry user information; credentials come from the handler", field)
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return origin{}, configError("%s must not have a query or a fragment", field)
	}
	host, err := netpolicy.CanonicalHost(u.Hostname())
	if err != nil {
		return origin{}, configError("%s: %v", field, err)
	}
	port := u.Port()
	if port == "" {
		port = defaultPort(u.Scheme)
	} else if !validPort(port) {
		return origin{}, configError("%s has an invalid port", field)
	}
	base := strings.TrimSuffix(u.EscapedPath(), "/")
	// A base path is accepted only in the clean form that request paths
	// are compared with: no "." or ".." segments, "//", ';' or '\'.
	if !netpolicy.UnderPath(base, base) {
		return origin{}, configError("%s: the path must be clean: no \".\" or \"..\" segments, \"//\", ';' or '\\'", field)
	}
	if u.Scheme == "http" && !netpolicy.Loopback(host) && !allowInsecure {
		return origin{}, insecureError(field)
	}
	return origin{svc: svc, scheme: u.Scheme, host: host, port: port, path: base}, nil
}

// matches reports whether u is addressed to o. For the usual request URL
// (the configured host as written, a plain path) it does not allocate.
func (o *origin) matches(u *url.URL) bool {
	if u.Scheme != o.scheme && !strings.EqualFold(u.Scheme, o.scheme) {
		return false
	}
	if h := u.Hostname(); h != o.host {
		c, err := netpolicy.CanonicalHost(h)
		if err != nil || c != o.host {
			return false
		}
	}
	port := u.Port()
	if port == "" {
		port = defaultPort(o.scheme)
	}
	return port == o.port && netpolicy.UnderPath(u.EscapedPath(), o.path)
}

func defaultPort(scheme string) string {
	if strings.EqualFold(scheme, "http") {
		return "80"
	}
	return "443"
}

func validPort(p string) bool {
	if len(p) > 5 {
		return false
	}
	n := 0
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
		n = n*10 + int(p[i]-'0')
	}
	return n > 0 && n < 65536
}
