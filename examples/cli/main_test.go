package main

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/authkit-go/authkit/authtest"
)

// The CLI persona as its user runs it: separate processes sharing a token
// directory. The login prompts once; the next process answers without a
// prompt or a token request; logout leaves the next process logged out.
func TestPersonaCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command")
	}
	bin := filepath.Join(t.TempDir(), "cli")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	prov := authtest.NewProvider(authtest.ProviderConfig{DeviceInterval: time.Second,
		Clients: []authtest.Client{{ID: "cli"}}, Users: []authtest.User{{Username: "ada"}}})
	defer prov.Close()
	prov.AutoApprove("ada", 0)
	dir := filepath.Join(t.TempDir(), "tokens") // created by the store with mode 0700
	cli := func(cmd string) (string, string, error) {
		c := exec.Command(bin, "-issuer", prov.Issuer(), "-client-id", "cli", "-store", dir, cmd)
		var stdout, stderr bytes.Buffer
		c.Stdout, c.Stderr = &stdout, &stderr
		err := c.Run()
		return stdout.String(), stderr.String(), err
	}

	if _, stderr, err := cli("login"); err != nil || !strings.Contains(stderr, "Your confirmation code is") {
		t.Fatalf("login: %v\n%s", err, stderr)
	}
	before := prov.Requests(authtest.EndpointToken)
	if out, stderr, err := cli("whoami"); err != nil || out != "ada\n" || stderr != "" {
		t.Fatalf("whoami in a new process: %q, %v\n%s", out, err, stderr)
	}
	if n := prov.Requests(authtest.EndpointToken) - before; n != 0 {
		t.Errorf("whoami asked for %d tokens", n)
	}
	if _, stderr, err := cli("logout"); err != nil {
		t.Fatalf("logout: %v\n%s", err, stderr)
	}
	_, stderr, err := cli("whoami")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 || !strings.Contains(stderr, "login required") {
		t.Errorf("whoami after logout: %v\n%s", err, stderr)
	}
}
