package interop

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// The authkit command against the real providers, run as a person runs
// it: a separate process, its own home, the prompt read from its stderr.

var (
	cliOnce sync.Once
	cliPath string
	cliErr  error
	cliDir  string
)

// authkitCommand builds cmd/authkit once for the package's tests.
func authkitCommand(t *testing.T) string {
	t.Helper()
	cliOnce.Do(func() {
		cliDir, cliErr = os.MkdirTemp("", "authkit-interop-cli-")
		if cliErr != nil {
			return
		}
		cliPath = filepath.Join(cliDir, "authkit")
		out, err := exec.Command("go", "build", "-o", cliPath, "../cmd/authkit").CombinedOutput()
		if err != nil {
			cliErr = errors.New("go build ../cmd/authkit: " + err.Error() + "\n" + string(out))
		}
	})
	if cliErr != nil {
		t.Fatal(cliErr)
	}
	return cliPath
}

// cliUser is a person's home for the command: private config and cache
// directories, no display, and env.
type cliUser struct {
	t   *testing.T
	bin string
	env []string
}

func newCLIUser(t *testing.T, env ...string) *cliUser {
	home := t.TempDir()
	return &cliUser{t: t, bin: authkitCommand(t), env: append([]string{
		"HOME=" + home,
		"XDG_CONFIG_HOME=" + filepath.Join(home, "config"),
		"XDG_CACHE_HOME=" + filepath.Join(home, "cache"),
		"PATH=" + os.Getenv("PATH"),
	}, env...)}
}

// start starts the command; its stderr lines arrive on the channel, which
// closes when the command has exited.
func (u *cliUser) start(ctx context.Context, args ...string) (*exec.Cmd, <-chan string, *bytes.Buffer) {
	u.t.Helper()
	cmd := exec.CommandContext(ctx, u.bin, args...)
	cmd.Env = u.env
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	mustf(u.t, err, "stderr pipe")
	mustf(u.t, cmd.Start(), "starting authkit")
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return cmd, lines, &stdout
}

// run runs the command to its end.
func (u *cliUser) run(args ...string) (stdout, stderr string, code int) {
	u.t.Helper()
	cmd := exec.CommandContext(testContext(u.t), u.bin, args...)
	cmd.Env = u.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		u.t.Fatalf("authkit %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

var (
	cliCodeRE = regexp.MustCompile(`enter the code:  (\S+)`)
	cliURLRE  = regexp.MustCompile(`^    (https?://\S+)$`)
)

// TestCLIDexDevice: authkit login --flow device at Dex, approved on Dex's
// own pages; then token and whoami in new processes without a prompt, and
// a logout that says Dex cannot revoke.
func TestCLIDexDevice(t *testing.T) {
	iss := dexIssuer(t)
	u := newCLIUser(t, "AUTHKIT_ISSUER="+iss, "AUTHKIT_CLIENT_ID="+dexPublicID,
		"AUTHKIT_SCOPES=email", "AUTHKIT_USERNAME_CLAIM="+dexUsernameClaim)
	ctx := testContext(t)
	cmd, lines, _ := u.start(ctx, "login", "--flow", "device")
	var out strings.Builder
	var uri, code string
	for line := range lines {
		out.WriteString(line + "\n")
		if m := cliURLRE.FindStringSubmatch(line); m != nil && uri == "" {
			uri = m[1]
		}
		if m := cliCodeRE.FindStringSubmatch(line); m != nil {
			code = m[1]
		}
		if strings.HasPrefix(line, "Waiting for the login") {
			if uri == "" || code == "" {
				t.Fatalf("no URL or code before %q:\n%s", line, out.String())
			}
			approveDex(t, iss, uri, code)
		}
	}
	if err := cmd.Wait(); err != nil || !strings.Contains(out.String(), "Logged in as "+userEmail+" at "+iss) {
		t.Fatalf("login: %v\n%s", err, out.String())
	}
	if strings.ContainsAny(out.String(), "█▀▄\x1b") {
		t.Errorf("a QR code or escapes without a terminal:\n%s", out.String())
	}

	tok, stderr, exit := u.run("token")
	if exit != 0 || stderr != "" || !isJWT(strings.TrimSpace(tok)) {
		t.Errorf("token in a new process: exit %d, %d bytes on stdout (not shown: a real token)\n%s", exit, len(tok), stderr)
	}
	if who, stderr, exit := u.run("whoami"); exit != 0 || who != userEmail+"\t"+iss+"\n" {
		t.Errorf("whoami: exit %d %q\n%s", exit, who, stderr)
	}
	if _, stderr, exit := u.run("login"); exit != 0 || !strings.Contains(stderr, "Already logged in (stored login, no prompt) as "+userEmail) {
		t.Errorf("second login: exit %d\n%s", exit, stderr)
	}
	_, stderr, exit = u.run("logout")
	if exit != 0 || !strings.Contains(stderr, "the provider did not revoke the tokens") || !strings.Contains(stderr, "Logged out of profile \"default\" here") {
		t.Errorf("logout at Dex (no revocation endpoint): exit %d\n%s", exit, stderr)
	}
	if _, stderr, exit := u.run("token"); exit != 3 || !strings.Contains(stderr, "login required") {
		t.Errorf("token after logout: exit %d\n%s", exit, stderr)
	}
}

// TestCLIBrowser: authkit login --flow browser with a real headless
// Chromium as the person's browser (BROWSER names a script that hands the
// URL to it), at Dex and oidc-provider.
func TestCLIBrowser(t *testing.T) {
	for _, p := range browserProviders() {
		t.Run(p.name, func(t *testing.T) {
			iss := p.issuer(t)
			b := chromium(t)
			dir := t.TempDir()
			script, got := filepath.Join(dir, "browser"), filepath.Join(dir, "url")
			mustf(t, os.WriteFile(script, []byte("#!/bin/sh\nprintf '%s' \"$1\" > "+got+".tmp && mv "+got+".tmp "+got+"\n"), 0o700), "browser script")
			u := newCLIUser(t, "BROWSER="+script, "AUTHKIT_ISSUER="+iss, "AUTHKIT_CLIENT_ID="+p.clientID,
				"AUTHKIT_SCOPES=email", "AUTHKIT_USERNAME_CLAIM="+p.claim)
			ctx := testContext(t)
			cmd, lines, _ := u.start(ctx, "login", "--flow", "browser")
			var authURL string
			for authURL == "" {
				data, err := os.ReadFile(got)
				if err == nil {
					authURL = string(data)
					break
				}
				select {
				case <-ctx.Done():
					t.Fatal("the command did not open the browser")
				case <-time.After(20 * time.Millisecond): // polling a file the script writes
				}
			}
			run := &browserRun{browser: b, do: p.login, errc: make(chan error, 1)}
			mustf(t, run.open(ctx, authURL), "opening Chromium")
			var out strings.Builder
			for line := range lines {
				out.WriteString(line + "\n")
			}
			if err := cmd.Wait(); err != nil || !strings.Contains(out.String(), "Logged in as "+p.user+" at "+iss) ||
				!strings.Contains(out.String(), "Opened your browser") || strings.Contains(out.String(), "enter the code") {
				t.Fatalf("login: %v\n%s", err, out.String())
			}
			if page := run.page(t); page.Title != "Logged in" || !strings.Contains(page.Detail, p.user) {
				t.Errorf("landing page %s: %q / %q", page.URL, page.Title, page.Detail)
			}
			tok, stderr, exit := u.run("token", "--format", "header")
			if exit != 0 || stderr != "" || !strings.HasPrefix(tok, "Authorization: Bearer ") {
				t.Fatalf("token: exit %d, %d bytes on stdout (not shown: a real token)\n%s", exit, len(tok), stderr)
			}
			checkToken(t, p, iss, strings.TrimSpace(strings.TrimPrefix(tok, "Authorization: Bearer ")))
			if who, stderr, exit := u.run("whoami"); exit != 0 || who != p.user+"\t"+iss+"\n" {
				t.Errorf("whoami: exit %d %q\n%s", exit, who, stderr)
			}
		})
	}
}
