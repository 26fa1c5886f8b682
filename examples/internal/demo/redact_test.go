package demo

import "testing"

func TestValue(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"bearer jwt", "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhZGEifQ.sig", "Bearer eyJhbGci…(redacted)"},
		{"bare jwt", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhZGEifQ.sig", "eyJhbGci…(redacted)"},
		{"bearer opaque", "Bearer 2YotnFZFEjr1zCsicMWpAA", "Bearer …(redacted)"},
		{"api key", "ak_live_2b9c41f0d6e8", "…(redacted)"},
		{"short jwt-like", "eyJabc", "…(redacted)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Value(tt.in); got != tt.want {
				t.Errorf("Value(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestFields(t *testing.T) {
	got := Fields(map[string][]string{"X-Api-Key": {"secret-value"}, "X-Api-Key-Id": {"k1"}})
	if want := "X-Api-Key: …(redacted); X-Api-Key-Id: k1"; got != want {
		t.Errorf("Fields = %q, want %q", got, want)
	}
}
