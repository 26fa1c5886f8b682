package netpolicy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
)

func TestCanonicalHost(t *testing.T) {
	tests := []struct {
		name    string
		host    string
		want    string
		also    string // another right answer, where the Unicode version decides
		wantErr bool
	}{
		{name: "lower-case name", host: "localhost", want: "localhost"},
		{name: "upper-case name is lower-cased", host: "LOCALHOST", want: "localhost"},
		{name: "root dot removed", host: "LocalHost.", want: "localhost"},
		{name: "ASCII name kept as dialled", host: "STRASSE.example", want: "strasse.example"},
		{name: "sharp s is not folded to ss", host: "straße.example", want: "xn--strae-oqa.example"},
		// UTS 46 mapped U+1E9E to "ss" until Unicode 15.1, and to "ß" since;
		// x/net/idna takes the tables of the Go release it is built with
		// (Go 1.26: "ss"; Go 1.27: "ß"). Either way CanonicalHost names the
		// host net/http dials: TestCanonicalHostIsWhatNetHTTPDials.
		{name: "capital sharp s maps as the Unicode version says", host: "ẞ.example", want: "ss.example", also: "xn--zca.example"},
		{name: "final sigma kept distinct from sigma", host: "ς.example", want: "xn--3xa.example"},
		{name: "punycode label kept", host: "XN--STRAE-OQA.example", want: "xn--strae-oqa.example"},
		{name: "fullwidth maps to ASCII", host: "ＬＯＣＡＬＨＯＳＴ", want: "localhost"},
		{name: "script small l maps to l", host: "ℓocalhost", want: "localhost"},
		{name: "long s maps to s", host: "localhoſt", want: "localhost"},
		{name: "ideographic full stop is a dot", host: "localhost。", want: "localhost"},
		{name: "zero-width space removed by IDNA", host: "local\u200bhost", want: "localhost"},
		{name: "underscore allowed in ASCII", host: "my_service", want: "my_service"},
		{name: "reserved hyphens allowed in ASCII", host: "r4---sn-abc.example", want: "r4---sn-abc.example"},
		{name: "IPv4", host: "127.0.0.1", want: "127.0.0.1"},
		{name: "IPv6 canonical form", host: "0:0:0:0:0:0:0:1", want: "::1"},
		{name: "IPv6 brackets removed", host: "[::1]", want: "::1"},
		{name: "IPv6 upper-case hex", host: "[2001:DB8::1]", want: "2001:db8::1"},
		{name: "IPv4-mapped", host: "::ffff:7f00:1", want: "::ffff:127.0.0.1"},
		{name: "fullwidth digits map to an IPv4 address", host: "１２７.0.0.1", want: "127.0.0.1"},
		{name: "name ending in a letter label", host: "127.0.0.1.nip.io", want: "127.0.0.1.nip.io"},
		{name: "empty", host: "", wantErr: true},
		{name: "root only", host: ".", wantErr: true},
		{name: "empty label", host: "a..example", wantErr: true},
		{name: "leading dot", host: ".example", wantErr: true},
		{name: "two root dots", host: "localhost..", wantErr: true},
		{name: "space", host: "local host", wantErr: true},
		{name: "percent", host: "a%2eb", wantErr: true},
		{name: "NUL", host: "localhost\x00.evil", wantErr: true},
		{name: "label too long", host: strings.Repeat("a", 64) + ".example", wantErr: true},
		{name: "name too long", host: strings.Repeat("a.", 127) + "ab", wantErr: true},
		{name: "IDNA disallowed hyphens", host: "-ü.example", wantErr: true},
		{name: "IDNA bidi rule", host: "\u0660.example", wantErr: true},
		{name: "IDNA disallowed character", host: "ü*.example", wantErr: true},
		{name: "short IPv4", host: "127.1", wantErr: true},
		{name: "hex IPv4", host: "0x7f.0.0.1", wantErr: true},
		{name: "octal IPv4", host: "0177.0.0.1", wantErr: true},
		{name: "integer IPv4", host: "2130706433", wantErr: true},
		{name: "IPv4 with root dot", host: "127.0.0.1.", wantErr: true},
		{name: "bracketed IPv4", host: "[127.0.0.1]", wantErr: true},
		{name: "unclosed bracket", host: "[::1", wantErr: true},
		{name: "IPv6 zone", host: "fe80::1%eth0", wantErr: true},
		{name: "bracketed IPv6 zone", host: "[fe80::1%25eth0]", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CanonicalHost(tt.host)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("CanonicalHost(%q) = %q, want an error", tt.host, got)
				}
				return
			}
			if err != nil || got != tt.want && (tt.also == "" || got != tt.also) {
				t.Fatalf("CanonicalHost(%q) = %q, %v; want %q", tt.host, got, err, tt.want)
			}
		})
	}
}

func TestLoopback(t *testing.T) {
	tests := []struct {
		name string
		host string
		want bool
	}{
		{name: "localhost", host: "localhost", want: true},
		{name: "upper case", host: "LOCALHOST", want: true},
		{name: "mixed case with root dot", host: "LocalHost.", want: true},
		// Go's resolver asks /etc/hosts and DNS about names under
		// .localhost: a name alone says nothing of where they lead.
		{name: "subdomain", host: "x.localhost", want: false},
		{name: "upper-case subdomain", host: "a.b.LOCALHOST", want: false},
		{name: "127.0.0.1", host: "127.0.0.1", want: true},
		{name: "anywhere in 127/8", host: "127.1.2.3", want: true},
		{name: "::1", host: "::1", want: true},
		{name: "bracketed ::1", host: "[::1]", want: true},
		{name: "long ::1", host: "0:0:0:0:0:0:0:1", want: true},
		{name: "IPv4-mapped loopback", host: "::ffff:127.0.0.1", want: true},
		{name: "bracketed IPv4-mapped loopback", host: "[::ffff:127.0.0.2]", want: true},
		// IDNA maps these to "localhost", and net/http dials "localhost".
		{name: "fullwidth", host: "ＬＯＣＡＬＨＯＳＴ", want: true},
		{name: "script small l", host: "ℓocalhost", want: true},
		{name: "long s", host: "localhoſt", want: true},
		{name: "IPv4 in fullwidth digits", host: "１２７.0.0.1", want: true},
		{name: "localhost as a label of a public name", host: "localhost.example.com"},
		{name: "suffix without a dot", host: "evillocalhost"},
		{name: "loopback digits in a public name", host: "127.0.0.1.nip.io"},
		{name: "private address", host: "10.0.0.1"},
		{name: "unspecified IPv4", host: "0.0.0.0"},
		{name: "unspecified IPv6", host: "::"},
		{name: "IPv4-compatible", host: "::127.0.0.1"},
		{name: "empty", host: ""},
		{name: "localhost.localdomain", host: "localhost.localdomain"},
		{name: "short IPv4 read as loopback by inet_aton", host: "127.1"},
		{name: "invalid name under localhost", host: "a..localhost"},
		{name: "NUL after localhost", host: "localhost\x00"},
		{name: "ASCII punycode decoding to localhost", host: "xn--localhost-"},
		{name: "Cyrillic o", host: "lоcalhost"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Loopback(tt.host); got != tt.want {
				t.Fatalf("Loopback(%q) = %v, want %v", tt.host, got, tt.want)
			}
		})
	}
}

// TestCanonicalHostIsWhatNetHTTPDials checks the premise of the package:
// for names that need IDNA, CanonicalHost returns the name net/http hands
// to the dialer (its IDNA tables are vendored separately from x/net's).
func TestCanonicalHostIsWhatNetHTTPDials(t *testing.T) {
	tests := []struct {
		name string
		host string
	}{
		{name: "fullwidth", host: "ＬＯＣＡＬＨＯＳＴ"},
		{name: "script small l", host: "ℓocalhost"},
		{name: "long s", host: "localhoſt"},
		{name: "sharp s", host: "straße.example"},
		{name: "capital sharp s", host: "ẞ.example"},
		{name: "final sigma", host: "ς.example"},
		{name: "ideographic full stop", host: "localhost。"},
		{name: "fullwidth digits", host: "１２７.0.0.1"},
	}
	errDialed := errors.New("dial recorded")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var dialled string
			client := &http.Client{Transport: &http.Transport{
				DialContext: func(_ context.Context, _, addr string) (net.Conn, error) {
					dialled, _, _ = net.SplitHostPort(addr)
					return nil, errDialed
				},
			}}
			if _, err := client.Get("http://" + tt.host + "/"); !errors.Is(err, errDialed) {
				t.Fatalf("GET did not reach the dialer: %v", err)
			}
			want, err := CanonicalHost(tt.host)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSuffix(dialled, "."); got != want {
				t.Fatalf("net/http dialled %q, CanonicalHost(%q) = %q", dialled, tt.host, want)
			}
		})
	}
}
