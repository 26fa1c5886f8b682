package netpolicy

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTerminalSafe(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "ASCII unchanged", in: "WDJB-MJHT", want: "WDJB-MJHT"},
		{name: "URL unchanged", in: "https://idp.example/device?user_code=WDJB-MJHT", want: "https://idp.example/device?user_code=WDJB-MJHT"},
		{name: "ordinary Unicode unchanged", in: "ÄÖÜ-ABCD", want: "ÄÖÜ-ABCD"},
		{name: "Arabic text unchanged", in: "رمز-١٢٣", want: "رمز-١٢٣"},
		{name: "screen clear", in: "\x1b[2JABCD", want: "\uFFFD[2JABCD"},
		{name: "colour", in: "\x1b[31mRED\x1b[0m", want: "\uFFFD[31mRED\uFFFD[0m"},
		{name: "OSC 8 hyperlink", in: "\x1b]8;;http://evil\x07click\x1b]8;;\x07", want: "\uFFFD]8;;http://evil\uFFFDclick\uFFFD]8;;\uFFFD"},
		{name: "OSC with string terminator", in: "\x1b]0;title\x1b\\", want: "\uFFFD]0;title\uFFFD\\"},
		{name: "BEL", in: "code\a", want: "code\uFFFD"},
		{name: "carriage return overwrites the line", in: "evil\rGOOD-CODE", want: "evil\uFFFDGOOD-CODE"},
		{name: "newline", in: "a\nb", want: "a\uFFFDb"},
		{name: "tab", in: "a\tb", want: "a\uFFFDb"},
		{name: "backspace", in: "abc\b\b\bxyz", want: "abc\uFFFD\uFFFD\uFFFDxyz"},
		{name: "NUL", in: "a\x00b", want: "a\uFFFDb"},
		{name: "DEL", in: "a\x7fb", want: "a\uFFFDb"},
		{name: "C1 CSI", in: "\u009b2J", want: "\uFFFD2J"},
		{name: "C1 OSC", in: "\u009d8;;x\u009c", want: "\uFFFD8;;x\uFFFD"},
		{name: "right-to-left override in a URL", in: "https://idp.example/\u202Efdp.exe", want: "https://idp.example/\uFFFDfdp.exe"},
		{name: "bidi isolates", in: "\u2066a\u2067b\u2068c\u2069", want: "\uFFFDa\uFFFDb\uFFFDc\uFFFD"},
		{name: "bidi marks", in: "\u200Ea\u200Fb\u061C", want: "\uFFFDa\uFFFDb\uFFFD"},
		{name: "bidi embeddings", in: "\u202Aa\u202Bb\u202Cc\u202Dd", want: "\uFFFDa\uFFFDb\uFFFDc\uFFFDd"},
		{name: "line separator", in: "a\u2028b\u2029c", want: "a\uFFFDb\uFFFDc"},
		{name: "invalid UTF-8 byte", in: "a\xffb", want: "a\uFFFDb"},
		{name: "overlong ESC is invalid UTF-8", in: "\xc0\x9b[2J", want: "\uFFFD\uFFFD[2J"},
		{name: "truncated sequence", in: "ab\xe2\x80", want: "ab\uFFFD\uFFFD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := TerminalSafe(tt.in); got != tt.want {
				t.Fatalf("TerminalSafe(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestTerminalSafeDoesNotAllocateForSafeInput(t *testing.T) {
	s := strings.Repeat("ÄÖÜ-ABCD ", 8)
	if n := testing.AllocsPerRun(100, func() { _ = TerminalSafe(s) }); n != 0 {
		t.Fatalf("TerminalSafe allocated %v times for safe input", n)
	}
}

// FuzzTerminalSafe checks that the output is valid UTF-8 without a
// forbidden rune other than U+FFFD, and that safe input is unchanged.
func FuzzTerminalSafe(f *testing.F) {
	for _, s := range []string{"WDJB-MJHT", "\x1b]8;;http://evil\x07", "\u009b2J", "a\u202eb", "\xff", "ÄÖÜ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := TerminalSafe(s)
		if !utf8.ValidString(got) {
			t.Fatalf("TerminalSafe(%q) = %q, not valid UTF-8", s, got)
		}
		for _, r := range got {
			if r != utf8.RuneError && forbiddenByBrief(r) {
				t.Fatalf("TerminalSafe(%q) = %q, contains %U", s, got, r)
			}
		}
		if utf8.ValidString(s) && strings.IndexFunc(s, forbiddenByBrief) < 0 && !strings.ContainsRune(s, utf8.RuneError) && got != s {
			t.Fatalf("TerminalSafe(%q) = %q, want it unchanged", s, got)
		}
	})
}

// forbiddenByBrief is the forbidden set written independently of forbidden.
func forbiddenByBrief(r rune) bool {
	if r <= 0x1f || r == 0x7f || (r >= 0x80 && r <= 0x9f) {
		return true
	}
	return strings.ContainsRune("\u061C\u200E\u200F\u202A\u202B\u202C\u202D\u202E\u2066\u2067\u2068\u2069\u2028\u2029", r)
}
