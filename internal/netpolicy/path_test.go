package netpolicy

import (
	"net/url"
	"path"
	"strings"
	"testing"
)

func TestUnderPath(t *testing.T) {
	tests := []struct {
		name string
		path string
		base string
		want bool
	}{
		{name: "below base", path: "/api/x", base: "/api", want: true},
		{name: "base itself", path: "/api", base: "/api", want: true},
		{name: "base with slash", path: "/api/", base: "/api", want: true},
		{name: "base given with slash", path: "/api/x", base: "/api/", want: true},
		{name: "base with slash, path without", path: "/api", base: "/api/", want: true},
		{name: "nested base", path: "/v1/api/x", base: "/v1/api", want: true},
		{name: "dot segment", path: "/api/./x", base: "/api", want: true},
		{name: "encoded dot segment", path: "/api/%2e/x", base: "/api", want: true},
		{name: "dots inside a name", path: "/api/x..y/..z", base: "/api", want: true},
		{name: "encoded slash in a name", path: "/api/projects/group%2Fproject", base: "/api", want: true},
		{name: "encoded percent", path: "/api/100%25", base: "/api", want: true},
		{name: "double-encoded letter", path: "/api/%2541", base: "/api", want: true},
		{name: "params on a name", path: "/api/x;jsessionid=1", base: "/api", want: true},
		{name: "Unicode", path: "/api/%C3%A4", base: "/api", want: true},
		{name: "empty path is the root", path: "", base: "/", want: true},
		{name: "everything under root", path: "/anything/x", base: "/", want: true},
		{name: "everything under empty base", path: "/anything", base: "", want: true},
		{name: "empty segments", path: "/api//x", base: "/api", want: true},

		{name: "sibling with base as prefix", path: "/apix", base: "/api"},
		{name: "params on base", path: "/api;x/y", base: "/api"},
		{name: "encoded base", path: "/%61pi/x", base: "/api"},
		{name: "other case", path: "/API/x", base: "/api"},
		{name: "empty path under a base", path: "", base: "/api"},
		{name: "dot-dot out", path: "/api/../admin", base: "/api"},
		{name: "dot-dot with params", path: "/api/..;/admin", base: "/api"},
		{name: "dot-dot with params and value", path: "/api/..;x=y/admin", base: "/api"},
		{name: "dot-dot with encoded slash", path: "/api/..%2fadmin", base: "/api"},
		{name: "dot-dot with encoded slash in a name", path: "/api/a%2fb/../../admin", base: "/api"},
		{name: "encoded dot-dot", path: "/api/%2e%2e/admin", base: "/api"},
		{name: "encoded dot-dot upper-case hex", path: "/api/%2E%2E/admin", base: "/api"},
		{name: "half-encoded dot-dot", path: "/api/.%2e/admin", base: "/api"},
		{name: "dot-dot with encoded backslash", path: "/api/..%5cadmin", base: "/api"},
		{name: "backslashes after base", path: "/api\\..\\admin", base: "/api"},
		{name: "backslashes in the rest", path: "/api/x\\..\\..\\admin", base: "/api"},
		{name: "encoded params separator", path: "/api/..%3b/admin", base: "/api"},
		{name: "trailing dot-dot", path: "/api/x/../..", base: "/api"},
		{name: "dot-dot that stays inside", path: "/api/x/../y", base: "/api"},
		{name: "dot-dot after empty segment", path: "/api//../admin", base: "/api"},
		{name: "double-encoded dots", path: "/api/%252e%252e/admin", base: "/api"},
		{name: "double-encoded slash", path: "/api/..%252fadmin", base: "/api"},
		{name: "double-encoded backslash", path: "/api/..%255cadmin", base: "/api"},
		{name: "triple-encoded dot", path: "/api/%25252e%25252e/admin", base: "/api"},
		{name: "double-encoded percent", path: "/api/%2525", base: "/api"},
		{name: "encoded NUL", path: "/api/x%00", base: "/api"},
		{name: "raw NUL", path: "/api/x\x00", base: "/api"},
		{name: "encoded newline", path: "/api/x%0a", base: "/api"},
		{name: "encoded DEL", path: "/api/x%7F", base: "/api"},
		{name: "malformed escape", path: "/api/%zz", base: "/api"},
		{name: "truncated escape", path: "/api/%2", base: "/api"},
		{name: "overlong dot", path: "/api/%c0%ae%c0%ae/admin", base: "/api"},
		{name: "raw query mark", path: "/api/x?y", base: "/api"},
		{name: "climb above root", path: "/../etc/passwd", base: "/"},
		{name: "relative path", path: "api/x", base: ""},
		{name: "asterisk form", path: "*", base: "/"},
		{name: "malformed under root", path: "/%zz", base: "/"},
		{name: "base with dot-dot", path: "/api/../admin", base: "/api/.."},
		{name: "relative base", path: "api/x", base: "api"},
		{name: "base with params", path: "/api;x/y", base: "/api;x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := UnderPath(tt.path, tt.base); got != tt.want {
				t.Fatalf("UnderPath(%q, %q) = %v, want %v", tt.path, tt.base, got, tt.want)
			}
		})
	}
}

// FuzzUnderPath checks that UnderPath never panics and that a path it
// accepts is under "/api" for two servers that read paths differently:
// one that decodes everything, treats '\' as '/', strips ";params" and
// cleans the path, and one that cleans the raw path without decoding.
func FuzzUnderPath(f *testing.F) {
	for _, s := range []string{"/api/x", "/api/../admin", "/api/..;/admin", "/api/..%2fadmin", "/api/%252e", "/api\\..", "/api/a%2fb/../.."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if !UnderPath(p, "/api") {
			return
		}
		decoded, err := url.PathUnescape(p)
		if err != nil {
			t.Fatalf("UnderPath accepted %q, which does not decode: %v", p, err)
		}
		segs := strings.Split(strings.ReplaceAll(decoded, "\\", "/"), "/")
		for i, s := range segs {
			segs[i], _, _ = strings.Cut(s, ";")
		}
		for _, served := range []string{path.Clean(strings.Join(segs, "/")), path.Clean(p)} {
			if served != "/api" && !strings.HasPrefix(served, "/api/") {
				t.Fatalf("UnderPath accepted %q, which a server reads as %q", p, served)
			}
		}
	})
}
