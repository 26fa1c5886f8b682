package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
)

// jwtPattern matches a whole JWT; the output must hold none.
var jwtPattern = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+\.`)

func TestRun(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-v"}, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{
		"[app] callback #1: handing authkit a fresh JWT for grace (Bearer eyJhbGci…(redacted), valid 3s)\n",
		"[app] callback #2:",
		"first round: hub says grace (jwt); access manager grants [projects:read]; message service says grace\n",
		"authkit user: grace\n",
		"the first JWT has expired: the hub refuses it (401)\n",
		"second round: hub says grace (jwt); access manager grants [projects:read]; message service says grace\n",
		"  > GET http://127.0.0.1:",
		"/api/me  {Authorization: Bearer eyJhbGci…(redacted)}  -> 200 OK\n",
		"/authtest.platform.v1.Messages/WhoAmI  {authorization: Bearer eyJhbGci…(redacted)}  -> OK\n",
		"0 failures; session re-authentications: 0\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q\n%s", want, got)
		}
	}
	if jwtPattern.MatchString(got) {
		t.Errorf("output shows a JWT\n%s", got)
	}
}
