package session

import (
	"net/netip"
	"net/url"
	"path"
	"strings"

	"github.com/authkit-go/authkit/auth"
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
		return "access-manager"
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
	scheme string // lower case
	host   string // lower case, without brackets
	port   string // explicit or the scheme's default
	path   string // cleaned, without a trailing slash; "" for the root
}

// parseOrigin parses a configured base URL. field names the Config field in
// errors. The URL's text is never repeated in an error, since a malformed
// URL may hold a secret.
func parseOrigin(raw string, svc service, field string, allowInsecure bool) (origin, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return origin{}, configError("%s is not a URL", field)
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "https" && scheme != "http" {
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
	port := u.Port()
	if port == "" {
		port = defaultPort(scheme)
	} else if !validPort(port) {
		return origin{}, configError("%s has an invalid port", field)
	}
	o := origin{svc: svc, scheme: scheme, host: strings.ToLower(u.Hostname()), port: port, path: cleanPath(u.Path)}
	if scheme == "http" && !isLoopback(o.host) && !allowInsecure {
		return origin{}, insecureError(field)
	}
	return o, nil
}

// matches reports whether u is addressed to o. It does not allocate.
func (o *origin) matches(u *url.URL) bool {
	if !strings.EqualFold(u.Scheme, o.scheme) || !strings.EqualFold(u.Hostname(), o.host) {
		return false
	}
	port := u.Port()
	if port == "" {
		port = defaultPort(o.scheme)
	}
	if port != o.port {
		return false
	}
	if o.path == "" {
		return true
	}
	p := u.Path
	if p == "" {
		p = "/"
	}
	p = path.Clean(p) // "/api/../admin" is not under "/api"
	return p == o.path || strings.HasPrefix(p, o.path) && p[len(o.path)] == '/'
}

// cleanPath normalises a base path: "", "/" -> ""; "/api/" -> "/api".
func cleanPath(p string) string {
	if p == "" {
		return ""
	}
	p = path.Clean("/" + p)
	if p == "/" {
		return ""
	}
	return p
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

// isLoopback reports whether host (without brackets) is "localhost" or a
// loopback IP address.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}
