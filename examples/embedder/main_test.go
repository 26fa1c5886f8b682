package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// The embedding persona with 2-second JWTs for 5 seconds: no call is
// refused, and the application is asked for a JWT about once per lifetime
// (renewed 1 s before each expires).
func TestPersonaEmbedder(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out, 2*time.Second, 5*time.Second); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	m := regexp.MustCompile(`^(\d+) calls as grace over 5s with 2s JWTs: 0 refused; the application was asked for (\d+) JWTs\n$`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("output %q", out.String())
	}
	if logins, _ := strconv.Atoi(m[2]); logins < 3 || logins > 7 {
		t.Errorf("%s JWTs asked for in 5 s of 2-second JWTs, want 3 to 7", m[2])
	}
}
