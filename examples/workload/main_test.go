package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestRun runs the pod: it finds its token file, authenticates with it as
// a client assertion (no secret), reaches the hub, and exchanges the
// rotated file again.
func TestRun(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"credentials from: federated token file (environment)\n",
		"hub: GET /api/me -> subject service-account-checkout, client checkout\n",
		"token request: grant_type=client_credentials client_id=checkout client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer client_secret sent: false\n",
		"after rotation: 2 token requests; the second sent the rotated token: true\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q\n%s", want, out.String())
		}
	}
}
