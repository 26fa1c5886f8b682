package totp

import (
	"encoding/base32"
	"testing"
	"time"
)

// The RFC 6238 appendix B vectors for SHA-1 (8 digits there; the last 6
// digits are the 6-digit code).
func TestRFC6238Vectors(t *testing.T) {
	secret := base32.StdEncoding.EncodeToString([]byte("12345678901234567890"))
	tests := []struct {
		name string
		unix int64
		want string
	}{
		{"59", 59, "287082"},
		{"1111111109", 1111111109, "081804"},
		{"1111111111", 1111111111, "050471"},
		{"1234567890", 1234567890, "005924"},
		{"2000000000", 2000000000, "279037"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Code(secret, time.Unix(tt.unix, 0))
			if err != nil || got != tt.want {
				t.Fatalf("Code = %q, %v; want %q", got, err, tt.want)
			}
			if !Verify(secret, tt.want, time.Unix(tt.unix+30, 0)) {
				t.Fatal("Verify rejects the code one step later")
			}
			if Verify(secret, tt.want, time.Unix(tt.unix+120, 0)) {
				t.Fatal("Verify accepts the code four steps later")
			}
		})
	}
	if _, err := Code("not base32!", time.Now()); err == nil {
		t.Fatal("bad secret accepted")
	}
}
