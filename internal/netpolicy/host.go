package netpolicy

import (
	"fmt"
	"net/netip"
	"strings"

	"golang.org/x/net/idna"
)

// CanonicalHost returns host in the form it is dialled and compared in:
//
//   - an IP literal, with or without the brackets of a URL
//     ("[::1]", "0:0:0:0:0:0:0:1"), is returned in its canonical netip form
//     ("::1"); an IPv6 zone ("fe80::1%eth0") is refused;
//   - a name that is not pure ASCII is converted by the IDNA lookup profile
//     (https://www.rfc-editor.org/rfc/rfc5891#section-5,
//     https://www.unicode.org/reports/tr46/), exactly as net/http does
//     before it dials: "straße.example" becomes "xn--strae-oqa.example",
//     "ＬＯＣＡＬＨＯＳＴ" and "ℓocalhost" become "localhost";
//   - a pure-ASCII name is dialled by net/http as written, so it is only
//     lower-cased (ASCII letters only, never Unicode case folding) and
//     checked: labels of 1 to 63 letters, digits, '-' or '_', at most 253
//     bytes in all;
//   - one trailing dot (the DNS root) is removed.
//
// A name whose last label is a number ("127.1", "0x7f.0.0.1", "2130706433")
// is refused unless it is a dotted-decimal IPv4 address: resolvers disagree
// on what such names mean. Every refusal is an error that names the host.
func CanonicalHost(host string) (string, error) {
	if strings.HasPrefix(host, "[") {
		a, err := netip.ParseAddr(strings.TrimSuffix(host[1:], "]"))
		if err != nil || !strings.HasSuffix(host, "]") || !a.Is6() {
			return "", hostError(host, "is not a bracketed IPv6 address")
		}
		return canonicalIP(host, a)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return canonicalIP(host, a)
	}
	name := host
	if !isASCII(name) {
		var err error
		if name, err = idna.Lookup.ToASCII(name); err != nil {
			return "", hostError(host, "is not a valid internationalised domain name (RFC 5891)")
		}
	}
	name, rooted := strings.CutSuffix(strings.ToLower(name), ".")
	if err := checkName(name); err != nil {
		return "", hostError(host, err.Error())
	}
	if numeric(name[strings.LastIndexByte(name, '.')+1:]) {
		a, err := netip.ParseAddr(name)
		if err != nil || rooted {
			return "", hostError(host, "is not an IPv4 address; write it as four decimal numbers such as 127.0.0.1")
		}
		return canonicalIP(host, a)
	}
	return name, nil
}

// Loopback reports whether host names this machine: "localhost", the IPv4
// block 127.0.0.0/8, ::1, and IPv4-mapped loopback addresses
// (::ffff:127.0.0.1). It judges CanonicalHost(host), so "LOCALHOST" and
// "Localhost." are loopback, and so is every Unicode name that IDNA maps
// to "localhost" (that is the name net/http dials); a host CanonicalHost
// refuses is not. "0.0.0.0" and "::" are not loopback.
//
// Names under ".localhost" are not: RFC 6761 §6.3 asks resolvers to answer
// them with a loopback address, but Go's resolver asks /etc/hosts and DNS
// about "x.localhost" like any name, so where credentials sent there go is
// DNS's to decide (TestLoopback, TestCheckURL).
func Loopback(host string) bool {
	h, err := CanonicalHost(host)
	if err != nil {
		return false
	}
	if a, err := netip.ParseAddr(h); err == nil {
		return a.IsLoopback() // netip unmaps ::ffff:127.0.0.1 itself
	}
	return h == "localhost"
}

func canonicalIP(host string, a netip.Addr) (string, error) {
	if a.Zone() != "" {
		return "", hostError(host, "has an IPv6 zone; zones are not supported")
	}
	return a.String(), nil
}

// checkName checks an ASCII, lower-case name without its root dot.
func checkName(name string) error {
	if name == "" {
		return fmt.Errorf("is empty")
	}
	if len(name) > 253 {
		return fmt.Errorf("is longer than 253 bytes")
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("has an empty label or one longer than 63 bytes")
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("has a character not allowed in a host name (%q)", c)
			}
		}
	}
	return nil
}

// numeric reports whether label is what the WHATWG URL standard reads as a
// number in an IPv4 address: decimal digits, or "0x" and hex digits.
func numeric(label string) bool {
	digits := "0123456789"
	if len(label) >= 2 && label[0] == '0' && label[1] == 'x' {
		label, digits = label[2:], "0123456789abcdef"
	}
	for i := 0; i < len(label); i++ {
		if strings.IndexByte(digits, label[i]) < 0 {
			return false
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func hostError(host, problem string) error {
	return fmt.Errorf("netpolicy: host %q %s", host, problem)
}
