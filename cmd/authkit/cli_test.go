package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	qrcode "github.com/skip2/go-qrcode"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/authtest"
	"github.com/authkit-go/authkit/handlers"
	"github.com/authkit-go/authkit/internal/goroutines"
	"github.com/authkit-go/authkit/internal/totp"
	"go.uber.org/goleak"
)

// binary is the authkit command, built once by TestMain.
var binary string

// TestMain builds the command once, and fails the run if a goroutine of
// the in-process tests is left once they end.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "authkit-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "authkit")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	goroutines.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		os.RemoveAll(dir)
		os.Exit(code)
	}))
}

const (
	cliClient   = "authkit-cli"
	svcClient   = "svc"
	svcSecret   = "svc-secret-4f1c"
	adaPassword = "ada-password-9d2e"
)

// world is a user's machine: an identity provider, a home with config and
// cache directories, and the command run in it as the user would.
type world struct {
	t    *testing.T
	prov *authtest.Provider
	home string
	env  []string
}

func newWorld(t *testing.T, mods ...func(*authtest.ProviderConfig)) *world {
	t.Helper()
	cfg := authtest.ProviderConfig{
		Clients:        []authtest.Client{{ID: cliClient}, {ID: svcClient, Secret: svcSecret}},
		Users:          []authtest.User{{Username: "ada", Password: adaPassword}, {Username: "bob", Password: "bob-pw"}},
		DeviceInterval: time.Second,
	}
	for _, m := range mods {
		m(&cfg)
	}
	prov := authtest.NewProvider(cfg)
	t.Cleanup(prov.Close)
	home := t.TempDir()
	w := &world{t: t, prov: prov, home: home, env: []string{
		"HOME=" + home,
		"XDG_CONFIG_HOME=" + filepath.Join(home, "config"),
		"XDG_CACHE_HOME=" + filepath.Join(home, "cache"),
		"PATH=" + os.Getenv("PATH"),
		"TERM=xterm-256color",
	}}
	return w
}

// login logs ada in with the device code of the default profile, in a
// process of its own.
func (w *world) login() {
	w.t.Helper()
	w.prov.AutoApprove("ada", 1500*time.Millisecond)
	if r := w.run(nil, "login"); r.code != 0 {
		w.t.Fatalf("login: exit %d\n%s", r.code, r.stderr)
	}
}

// writeConfig writes the user's config.toml with mode perm.
func (w *world) writeConfig(text string, perm os.FileMode) string {
	w.t.Helper()
	path := filepath.Join(w.home, "config", "authkit", "config.toml")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		w.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), perm); err != nil {
		w.t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil {
		w.t.Fatal(err)
	}
	return path
}

// workConfig is a config file with a device profile "work" (the default)
// and a client-credentials profile "robot", without its secret.
func (w *world) workConfig() { w.writeConfig(w.workConfigText(), 0o600) }

// workConfigText is workConfig's file; the robot profile is the last table.
func (w *world) workConfigText() string {
	return fmt.Sprintf(`# authkit profiles
profile = "work"

[profiles.work]
issuer    = %q
client_id = %q

[profiles.robot]
issuer    = %q
client_id = %q
flow      = "client-credentials"
`, w.prov.Issuer(), cliClient, w.prov.Issuer(), svcClient)
}

type result struct {
	stdout, stderr string // under a terminal, stdout holds both
	code           int
}

// run runs the command with pipes for stdin, stdout and stderr: a script.
func (w *world) run(env []string, args ...string) result {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(w.t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(append([]string{}, w.env...), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return result{stdout: out.String(), stderr: errb.String(), code: exitCode(w.t, err)}
}

// runTerminal runs the command on a pseudo-terminal, as a person would.
func (w *world) runTerminal(env []string, args ...string) result {
	w.t.Helper()
	if runtime.GOOS == "windows" {
		w.t.Skip("no pseudo-terminals")
	}
	ctx, cancel := context.WithTimeout(w.t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(append([]string{}, w.env...), env...)
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 80, Cols: 160})
	if err != nil {
		w.t.Fatal(err)
	}
	defer tty.Close()
	var out bytes.Buffer
	_, _ = io.Copy(&out, tty) // ends with EIO when the command exits
	err = cmd.Wait()
	return result{stdout: out.String(), code: exitCode(w.t, err)}
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.ExitCode()
	}
	t.Fatalf("running authkit: %v", err)
	return -1
}

// store opens the token directory the command uses.
func (w *world) store() *auth.FileStore {
	w.t.Helper()
	s, err := auth.NewFileStore(auth.FileStoreConfig{Dir: filepath.Join(w.home, "cache", "authkit")})
	if err != nil {
		w.t.Fatal(err)
	}
	return s
}

// deviceKey is the store key of the device client's login.
func (w *world) deviceKey(username string) auth.StoreKey {
	return auth.StoreKey{Issuer: w.prov.Issuer(), ClientID: cliClient, Username: username,
		Scopes: []string{"openid", "profile", "offline_access"}}
}

// storedToken reads the login the command saved for the device client.
func (w *world) storedToken(username string) *auth.Token {
	w.t.Helper()
	tok, err := w.store().Load(w.t.Context(), w.deviceKey(username))
	if err != nil {
		w.t.Fatal(err)
	}
	return tok
}

var (
	codeRE      = regexp.MustCompile(`enter the code:  ([A-Z]{4}-[A-Z]{4})`)
	countdownRE = regexp.MustCompile(`the code expires in (\d+:\d\d)`)
	escapeRE    = regexp.MustCompile("\x1b\\[[0-9;]*[A-Za-z]")
)

// TestLoginOnTerminal: a person logs in on a terminal. They see the code,
// the URL, a QR code that carries verification_uri_complete, and a
// countdown that stops when the login ends. Later runs, new processes,
// reuse the login without a prompt and without asking the provider.
func TestLoginOnTerminal(t *testing.T) {
	t.Parallel() // each test has its own provider, home and processes
	w := newWorld(t)
	w.workConfig()
	w.prov.AutoApprove("ada", 2500*time.Millisecond)

	r := w.runTerminal(nil, "login")
	if r.code != 0 {
		t.Fatalf("login: exit %d\n%s", r.code, r.stdout)
	}
	out := r.stdout
	m := codeRE.FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, w.prov.Issuer()+"/device\r\n") {
		t.Fatalf("no code and URL in:\n%s", out)
	}
	complete := w.prov.Issuer() + "/device?user_code=" + m[1]
	checkQR(t, out, complete, true)
	counts := map[string]bool{}
	for _, c := range countdownRE.FindAllStringSubmatch(out, -1) {
		counts[c[1]] = true
	}
	first := countdownRE.FindStringSubmatch(out)
	if len(counts) < 2 || first == nil || !(first[1] == "10:00" || strings.HasPrefix(first[1], "9:5")) {
		t.Errorf("countdown values %v, want several, from about 10:00", counts)
	}
	// The countdown line is erased before the result is printed.
	if !strings.Contains(out, "\r\x1b[2KLogged in as ada at "+w.prov.Issuer()) {
		t.Errorf("no result after an erased countdown line:\n%q", out[max(0, len(out)-400):])
	}

	devices, tokens := w.prov.Requests(authtest.EndpointDeviceCode), w.prov.Requests(authtest.EndpointToken)
	r = w.run(nil, "login")
	if r.code != 0 || !strings.Contains(r.stderr, "Already logged in (stored login, no prompt) as ada") || strings.Contains(r.stderr, "code") {
		t.Errorf("second login: exit %d\n%s", r.code, r.stderr)
	}
	tok := w.run(nil, "token")
	if tok.code != 0 || tok.stderr != "" {
		t.Fatalf("token: exit %d\n%s", tok.code, tok.stderr)
	}
	if want := w.storedToken("").AccessToken.Reveal(); tok.stdout != want+"\n" {
		t.Errorf("token printed %q, want the stored access token", tok.stdout)
	}
	if who := w.run(nil, "whoami"); who.code != 0 || who.stdout != "ada\t"+w.prov.Issuer()+"\n" {
		t.Errorf("whoami: exit %d %q\n%s", who.code, who.stdout, who.stderr)
	}
	// A program built on the library, configured for the same provider
	// and client, uses the same login from the shared token directory.
	sdk, err := handlers.NewDeviceCode(handlers.DeviceCodeConfig{OAuthConfig: handlers.OAuthConfig{
		Endpoints: handlers.Endpoints{Issuer: w.prov.Issuer()}, ClientID: cliClient, Store: w.store()}})
	if err != nil {
		t.Fatal(err)
	}
	defer sdk.Close()
	if hdr, err := sdk.HubRequestHeaders(t.Context()); err != nil || hdr.Get("Authorization") != "Bearer "+w.storedToken("").AccessToken.Reveal() || sdk.Username() != "ada" {
		t.Errorf("a program sharing the token directory: %v, %q", err, sdk.Username())
	}
	if n := w.prov.Requests(authtest.EndpointDeviceCode) - devices; n != 0 {
		t.Errorf("%d device authorizations after the first login", n)
	}
	if n := w.prov.Requests(authtest.EndpointToken) - tokens; n != 0 {
		t.Errorf("%d token requests after the first login (the stored token is valid)", n)
	}
}

// checkQR decodes the half-block QR code in out and compares it with the
// QR code of want.
func checkQR(t *testing.T, out, want string, color bool) {
	t.Helper()
	var rows []string
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimRight(line, "\r")
		if color {
			if !strings.HasPrefix(line, "\x1b[30;47m") {
				continue
			}
		} else if !strings.ContainsAny(line, "█▀▄") {
			continue
		}
		rows = append(rows, escapeRE.ReplaceAllString(line, ""))
	}
	q, err := qrcode.New(want, qrcode.Low)
	if err != nil {
		t.Fatal(err)
	}
	bm := q.Bitmap()
	if len(rows) != (len(bm)+1)/2 {
		t.Fatalf("QR code of %d lines, want %d for %q:\n%s", len(rows), (len(bm)+1)/2, want, strings.Join(rows, "\n"))
	}
	for y, row := range rows {
		cells := []rune(row)
		if len(cells) != len(bm[0]) {
			t.Fatalf("QR line %d has %d cells, want %d", y, len(cells), len(bm[0]))
		}
		for x, c := range cells {
			top := c == '█' || c == '▀'
			bottom := c == '█' || c == '▄'
			if !color { // light modules are drawn
				top, bottom = !top, !bottom
			}
			wantBottom := 2*y+1 < len(bm) && bm[2*y+1][x]
			if top != bm[2*y][x] || (2*y+1 < len(bm) && bottom != wantBottom) {
				t.Fatalf("QR module (%d,%d) differs from the code of %q", x, 2*y, want)
			}
		}
	}
}

// TestLoginScript: without a terminal there is no QR code, no animation
// and no escape code, unless --qr asks for the QR code; the result is the
// same login.
func TestLoginScript(t *testing.T) {
	t.Parallel() // each test has its own provider, home and processes
	w := newWorld(t)
	w.workConfig()
	w.prov.AutoApprove("ada", 1500*time.Millisecond)
	r := w.run(nil, "login")
	if r.code != 0 || r.stdout != "" {
		t.Fatalf("login: exit %d, stdout %q\n%s", r.code, r.stdout, r.stderr)
	}
	if strings.ContainsAny(r.stderr, "█▀▄\r\x1b") || !strings.Contains(r.stderr, "Waiting for the login; the code expires at ") ||
		!strings.Contains(r.stderr, "/device?user_code=") || !strings.Contains(r.stderr, "Logged in as ada") {
		t.Errorf("login output:\n%q", r.stderr)
	}

	w.run(nil, "logout")
	w.prov.AutoApprove("ada", 1500*time.Millisecond)
	r = w.run(nil, "login", "--qr")
	m := codeRE.FindStringSubmatch(r.stderr)
	if r.code != 0 || m == nil || strings.Contains(r.stderr, "\x1b") {
		t.Fatalf("login --qr: exit %d\n%s", r.code, r.stderr)
	}
	checkQR(t, r.stderr, w.prov.Issuer()+"/device?user_code="+m[1], false)
}

// TestNoColor: NO_COLOR keeps colour escapes out of a terminal session;
// the QR code and the countdown stay.
func TestNoColor(t *testing.T) {
	t.Parallel() // each test has its own provider, home and processes
	w := newWorld(t)
	w.workConfig()
	w.prov.AutoApprove("ada", 1500*time.Millisecond)
	r := w.runTerminal([]string{"NO_COLOR=1"}, "login")
	m := codeRE.FindStringSubmatch(r.stdout)
	if r.code != 0 || m == nil {
		t.Fatalf("login: exit %d\n%s", r.code, r.stdout)
	}
	if strings.Contains(r.stdout, "\x1b[30") || strings.Contains(r.stdout, "\x1b[0m") {
		t.Errorf("colour escapes despite NO_COLOR")
	}
	checkQR(t, r.stdout, w.prov.Issuer()+"/device?user_code="+m[1], false)
	if !countdownRE.MatchString(r.stdout) {
		t.Errorf("no countdown")
	}
}

// TestTokenNeverPrompts: without a login, token exits 3 without asking the
// provider for a device code; with --login it logs in (prompting on stderr)
// and prints the token alone on stdout.
func TestTokenNeverPrompts(t *testing.T) {
	t.Parallel() // each test has its own provider, home and processes
	w := newWorld(t)
	w.workConfig()
	for _, args := range [][]string{{"token"}, {"token", "--format", "kubectl"}, {"whoami"}} {
		r := w.run(nil, args...)
		if r.code != 3 || r.stdout != "" || r.stderr != "authkit: login required for profile \"work\" (no usable refresh token): run 'authkit login'\n" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, r.code, r.stdout, r.stderr)
		}
	}
	if r := w.run(nil, "status", "-p", "work"); r.code != 3 || !strings.Contains(r.stdout, "work: not logged in") || r.stderr != "authkit: profile \"work\" is not logged in: run 'authkit login --profile work'\n" {
		t.Errorf("status: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := w.run(nil, "logout"); r.code != 0 || r.stderr != "No login of profile \"work\" (as configured now) was stored; nothing to revoke.\n" {
		t.Errorf("logout: exit %d\n%s", r.code, r.stderr)
	}
	if n := w.prov.Requests(authtest.EndpointDeviceCode); n != 0 {
		t.Errorf("%d device authorizations without --login", n)
	}
	w.prov.AutoApprove("ada", 1500*time.Millisecond)
	r := w.run(nil, "token", "--login")
	if r.code != 0 || !strings.Contains(r.stderr, "enter the code") {
		t.Fatalf("token --login: exit %d\n%s", r.code, r.stderr)
	}
	if want := w.storedToken("").AccessToken.Reveal(); r.stdout != want+"\n" {
		t.Errorf("stdout %q, want the token alone", r.stdout)
	}
}

// TestTokenFormats: header, json and kubectl print the same valid token;
// kubectl's is an ExecCredential with the token's expiry.
func TestTokenFormats(t *testing.T) {
	t.Parallel() // each test has its own provider, home and processes
	w := newWorld(t)
	w.workConfig()
	w.login()
	stored := w.storedToken("")
	at := stored.AccessToken.Reveal()

	if r := w.run(nil, "token", "--format", "header"); r.stdout != "Authorization: Bearer "+at+"\n" {
		t.Errorf("header: %q %s", r.stdout, r.stderr)
	}
	var js struct {
		AccessToken string    `json:"access_token"`
		TokenType   string    `json:"token_type"`
		Expiry      time.Time `json:"expiry"`
		Scope       string    `json:"scope"`
		Refresh     *string   `json:"refresh_token"`
	}
	r := w.run(nil, "token", "-o", "json")
	if err := json.Unmarshal([]byte(r.stdout), &js); err != nil || js.AccessToken != at || js.TokenType != "Bearer" ||
		!js.Expiry.Equal(stored.Expiry) || js.Refresh != nil || strings.Contains(r.stdout, stored.RefreshToken.Reveal()) {
		t.Errorf("json: %v %+v\n%s", err, js, r.stdout)
	}

	r = w.run(nil, "token", "--format", "kubectl")
	var ec struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Status     struct {
			Token               string `json:"token"`
			ExpirationTimestamp string `json:"expirationTimestamp"`
		} `json:"status"`
	}
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ec); err != nil || r.code != 0 {
		t.Fatalf("kubectl: %v, exit %d\n%s%s", err, r.code, r.stdout, r.stderr)
	}
	exp, err := time.Parse(time.RFC3339, ec.Status.ExpirationTimestamp)
	if ec.APIVersion != "client.authentication.k8s.io/v1" || ec.Kind != "ExecCredential" || ec.Status.Token != at ||
		err != nil || !exp.Equal(stored.Expiry.Truncate(time.Second)) {
		t.Errorf("ExecCredential %+v (%v), want the token expiring at %s", ec, err, stored.Expiry.UTC().Format(time.RFC3339))
	}
	if r := w.run(nil, "token", "--format", "yaml"); r.code != 2 {
		t.Errorf("--format yaml: exit %d", r.code)
	}
}

// TestTokenRefreshesSilently: a stored access token that expired since
// the last run (a laptop that slept) is refreshed by token in a new process,
// without a prompt, and the rotated refresh token is saved for the next.
func TestTokenRefreshesSilently(t *testing.T) {
	t.Parallel() // each test has its own provider, home and processes
	w := newWorld(t)
	w.workConfig()
	w.login()
	for i := range 3 {
		before := w.expireStored()
		r := w.run(nil, "token")
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("token %d: exit %d\n%s", i, r.code, r.stderr)
		}
		after := w.storedToken("")
		if r.stdout == before.AccessToken.Reveal()+"\n" || r.stdout != after.AccessToken.Reveal()+"\n" {
			t.Errorf("token %d: not the refreshed token", i)
		}
		if after.RefreshToken.Equal(before.RefreshToken) {
			t.Errorf("token %d: the rotated refresh token was not saved", i)
		}
	}
	if n := w.prov.GrantRequests(authtest.GrantRefreshToken); n != 3 {
		t.Errorf("%d refreshes for 3 runs, want 3", n)
	}
	if n := w.prov.Requests(authtest.EndpointDeviceCode); n != 1 {
		t.Errorf("%d device logins, want 1", n)
	}
}

// expireStored rewrites the stored login as if its access token had
// expired a minute ago, and returns it.
func (w *world) expireStored() *auth.Token {
	w.t.Helper()
	s, key := w.store(), w.deviceKey("")
	tok, err := s.Load(w.t.Context(), key)
	if err != nil || tok == nil {
		w.t.Fatalf("no stored login: %v", err)
	}
	tok.Expiry = time.Now().Add(-time.Minute)
	if err := s.Save(w.t.Context(), key, tok); err != nil {
		w.t.Fatal(err)
	}
	return tok
}

// TestLogoutRevokes: logout revokes at the provider, which then refuses
// the old refresh token, and leaves the next run logged out.
func TestLogoutRevokes(t *testing.T) {
	t.Parallel() // each test has its own provider, home and processes
	w := newWorld(t)
	w.workConfig()
	w.login()
	old := w.storedToken("")
	r := w.run(nil, "logout")
	if r.code != 0 || r.stderr != "Logged out of profile \"work\": the tokens are revoked at the provider and deleted here.\n" {
		t.Fatalf("logout: exit %d\n%s", r.code, r.stderr)
	}
	if w.storedToken("") != nil {
		t.Error("the login is still stored")
	}
	if !w.prov.AccessTokenRevoked(old.AccessToken.Reveal()) {
		t.Error("the access token was not revoked")
	}
	resp, err := http.PostForm(w.prov.TokenURL(), url.Values{"grant_type": {"refresh_token"},
		"refresh_token": {old.RefreshToken.Reveal()}, "client_id": {cliClient}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(body), `"invalid_grant"`) {
		t.Errorf("the old refresh token after logout: %d %s", resp.StatusCode, body)
	}
	if r := w.run(nil, "token"); r.code != 3 {
		t.Errorf("token after logout: exit %d", r.code)
	}
	if r := w.run(nil, "logout"); r.code != 0 || !strings.Contains(r.stderr, "No login of profile \"work\" (as configured now) was stored") {
		t.Errorf("second logout: exit %d\n%s", r.code, r.stderr)
	}
}

// TestStatus: status shows user, scopes and both expiries, exits 3 while a
// profile is logged out, and never prints a token, in either format.
func TestStatus(t *testing.T) {
	t.Parallel() // each test has its own provider, home and processes
	w := newWorld(t)
	w.writeConfig(w.workConfigText()+fmt.Sprintf("client_secret = %q\n", svcSecret), 0o600)
	w.login()
	if r := w.run(nil, "token", "-p", "robot"); r.code != 0 {
		t.Fatalf("robot token: %s", r.stderr)
	}
	stored := w.storedToken("")
	secrets := []string{stored.AccessToken.Reveal(), stored.RefreshToken.Reveal(), stored.IDToken.Reveal(), svcSecret}

	r := w.run(nil, "status", "--json")
	var sts []profileStatus
	if err := json.Unmarshal([]byte(r.stdout), &sts); err != nil || r.code != 0 || len(sts) != 2 {
		t.Fatalf("status --json: %v, exit %d\n%s%s", err, r.code, r.stdout, r.stderr)
	}
	robot, work := sts[0], sts[1]
	if !work.LoggedIn || work.Username != "ada" || work.Flow != "device" || strings.Join(work.Scopes, " ") != "openid profile offline_access" ||
		work.AccessTokenExpiry == nil || !work.AccessTokenExpiry.Equal(stored.Expiry.Truncate(time.Second)) ||
		work.RefreshTokenExpiry == nil || !work.RefreshTokenExpiry.Equal(stored.RefreshExpiry.Truncate(time.Second)) || !work.HasRefreshToken {
		t.Errorf("work: %+v", work)
	}
	if !robot.LoggedIn || robot.Username != "" || robot.Flow != "client-credentials" || robot.HasRefreshToken {
		t.Errorf("robot: %+v", robot)
	}
	human := w.run(nil, "status")
	if human.code != 0 || !strings.Contains(human.stdout, "work: logged in as ada\n") || !strings.Contains(human.stdout, "robot: logged in as client svc\n") {
		t.Errorf("status: exit %d\n%s%s", human.code, human.stdout, human.stderr)
	}
	for _, out := range []string{r.stdout, r.stderr, human.stdout, human.stderr} {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Fatalf("status printed a secret:\n%s", out)
			}
		}
	}

	if r := w.run(nil, "logout", "--all"); r.code != 0 || strings.Count(r.stderr, "the tokens are revoked at the provider and deleted here") != 2 {
		t.Errorf("logout --all: exit %d\n%s", r.code, r.stderr)
	}
	r = w.run(nil, "status", "--json")
	// A client acting as itself has no login to end: its secret gets it a
	// token again.
	if err := json.Unmarshal([]byte(r.stdout), &sts); err != nil || r.code != 3 || len(sts) != 2 || !sts[0].LoggedIn || sts[1].LoggedIn {
		t.Errorf("status after logout: %v exit %d\n%s", err, r.code, r.stdout)
	}
	// The secret in the environment is for the profile in use only: it is
	// not sent for the robot profile, whose file has none.
	w.workConfig()
	grants := w.prov.GrantRequests(authtest.GrantClientCredentials)
	r = w.run([]string{"AUTHKIT_CLIENT_SECRET=" + svcSecret}, "status")
	if r.code != 1 || !strings.Contains(r.stdout, "robot: unknown: profile \"robot\": the client-credentials flow needs a client secret") ||
		!strings.Contains(r.stdout, "work: not logged in") || r.stderr != "authkit: 1 of 2 profiles could not be read\n" {
		t.Errorf("status with a secret for another profile: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if n := w.prov.GrantRequests(authtest.GrantClientCredentials) - grants; n != 0 {
		t.Errorf("%d client credentials grants with the other profile's secret", n)
	}
}

// TestSilentProvider: a provider that never answers ends the command with
// an error naming what it waited for (exit 1) once --timeout has passed,
// not a hang.
func TestSilentProvider(t *testing.T) {
	t.Parallel() // each test has its own provider, home and processes
	w := newWorld(t)
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(hang)
	r := w.run(nil, "login", "--issuer", srv.URL, "--client-id", cliClient, "--timeout", "1s")
	if r.code != 1 || !strings.Contains(r.stderr, srv.URL) || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("login: exit %d\n%s", r.code, r.stderr)
	}
}

// TestSecretInConfig: a client secret in a file others may read is used,
// with a warning that says how to fix the mode.
func TestSecretInConfig(t *testing.T) {
	t.Parallel() // each test has its own provider, home and processes
	w := newWorld(t)
	text := fmt.Sprintf("[profiles.robot]\nissuer = %q\nclient_id = %q\nclient_secret = %q\nflow = \"client-credentials\"\n",
		w.prov.Issuer(), svcClient, svcSecret)
	path := w.writeConfig(text, 0o644)
	r := w.run(nil, "token", "-p", "robot")
	want := fmt.Sprintf("authkit: warning: %s holds a client secret and others may read it (mode 0644); run: chmod 600 %s\n", path, path)
	if r.code != 0 || r.stderr != want || r.stdout == "" {
		t.Errorf("mode 0644: exit %d\n%q\nwant %q", r.code, r.stderr, want)
	}
	w.writeConfig(text, 0o600)
	if r := w.run(nil, "token", "-p", "robot"); r.code != 0 || r.stderr != "" {
		t.Errorf("mode 0600: exit %d\n%s", r.code, r.stderr)
	}
	if r := w.run(nil, "whoami", "-p", "robot"); r.stdout != "client svc\t"+w.prov.Issuer()+"\n" {
		t.Errorf("whoami: %q %s", r.stdout, r.stderr)
	}
}

// TestEnvironmentAndFlags: without a config file the environment makes a
// profile; a flag beats the environment, which beats the file.
func TestEnvironmentAndFlags(t *testing.T) {
	t.Parallel() // each test has its own provider, home and processes
	w := newWorld(t)
	env := []string{"AUTHKIT_ISSUER=" + w.prov.Issuer(), "AUTHKIT_CLIENT_ID=" + svcClient, "AUTHKIT_CLIENT_SECRET=" + svcSecret,
		"AUTHKIT_FLOW=client-credentials"}
	if r := w.run(env, "whoami"); r.code != 0 || r.stdout != "client svc\t"+w.prov.Issuer()+"\n" {
		t.Fatalf("from the environment: exit %d %q\n%s", r.code, r.stdout, r.stderr)
	}
	// The file says device; the environment says client credentials.
	w.writeConfig(fmt.Sprintf("[profiles.default]\nissuer = %q\nclient_id = %q\n", w.prov.Issuer(), cliClient), 0o600)
	if r := w.run(env, "whoami"); r.code != 0 || !strings.HasPrefix(r.stdout, "client svc\t") {
		t.Errorf("environment over file: exit %d %q\n%s", r.code, r.stdout, r.stderr)
	}
	// The flag says device again: no login, exit 3.
	if r := w.run(env, "whoami", "--flow", "device", "--client-id", cliClient); r.code != 3 {
		t.Errorf("flag over environment: exit %d\n%s", r.code, r.stderr)
	}
}

// TestProfileChoice: --profile beats AUTHKIT_PROFILE, which beats the
// file's default; --config beats AUTHKIT_CONFIG, which beats the default
// file.
func TestProfileChoice(t *testing.T) {
	t.Parallel() // each test has its own provider, home and processes
	w := newWorld(t)
	w.writeConfig(fmt.Sprintf(`profile = "robot"
[profiles.robot]
issuer = %q
client_id = %q
client_secret = %q
flow = "client-credentials"
[profiles.person]
issuer = %q
client_id = %q
`, w.prov.Issuer(), svcClient, svcSecret, w.prov.Issuer(), cliClient), 0o600)
	other := filepath.Join(w.home, "other.toml")
	if err := os.WriteFile(other, []byte(fmt.Sprintf("[profiles.default]\nissuer = %q\nclient_id = %q\n", w.prov.Issuer(), cliClient)), 0o600); err != nil {
		t.Fatal(err)
	}
	robot, person := "client svc\t"+w.prov.Issuer()+"\n", `profile "person"`
	tests := []struct {
		name string
		env  []string
		args []string
		want string // stdout, or what stderr holds on exit 3
	}{
		{"the file's default", nil, nil, robot},
		{"AUTHKIT_PROFILE over the file", []string{"AUTHKIT_PROFILE=person"}, nil, person},
		{"--profile over AUTHKIT_PROFILE", []string{"AUTHKIT_PROFILE=person"}, []string{"--profile", "robot"}, robot},
		{"AUTHKIT_CONFIG over the default file", []string{"AUTHKIT_CONFIG=" + other}, nil, `profile "default"`},
		{"--config over AUTHKIT_CONFIG", []string{"AUTHKIT_CONFIG=" + other}, []string{"--config", filepath.Join(w.home, "config", "authkit", "config.toml")}, robot},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := w.run(tt.env, append([]string{"whoami"}, tt.args...)...)
			if tt.want == robot && (r.code != 0 || r.stdout != robot) || tt.want != robot && (r.code != 3 || !strings.Contains(r.stderr, tt.want)) {
				t.Errorf("exit %d, stdout %q, stderr %q; want %q", r.code, r.stdout, r.stderr, tt.want)
			}
		})
	}
}

// TestPasswordFlow: the password comes from AUTHKIT_PASSWORD (or the
// terminal); without either, token says a login is required.
func TestPasswordFlow(t *testing.T) {
	t.Parallel() // each test has its own provider, home and processes
	w := newWorld(t)
	w.writeConfig(fmt.Sprintf("[profiles.default]\nissuer = %q\nclient_id = %q\nflow = \"password\"\nusername = \"ada\"\n", w.prov.Issuer(), cliClient), 0o600)
	if r := w.run(nil, "token"); r.code != 3 || !strings.Contains(r.stderr, "login required") {
		t.Errorf("no password: exit %d\n%s", r.code, r.stderr)
	}
	if r := w.run([]string{"AUTHKIT_PASSWORD=" + adaPassword}, "login"); r.code != 0 || !strings.Contains(r.stderr, "Logged in as ada") {
		t.Fatalf("login: exit %d\n%s", r.code, r.stderr)
	}
	if r := w.run(nil, "whoami"); r.code != 0 || !strings.HasPrefix(r.stdout, "ada\t") {
		t.Errorf("whoami with the stored login, no password: exit %d %q\n%s", r.code, r.stdout, r.stderr)
	}
	if n := w.prov.GrantRequests(authtest.GrantPassword); n != 1 {
		t.Errorf("%d password grants, want 1", n)
	}
}

// TestPasswordOnTerminal: the password and a one-time code are read from
// the terminal, the password without echo.
func TestPasswordOnTerminal(t *testing.T) {
	t.Parallel() // each test has its own provider, home and processes
	const totpSecret = "JBSWY3DPEHPK3PXP"
	w := newWorld(t, func(c *authtest.ProviderConfig) {
		c.Users = append(c.Users, authtest.User{Username: "eve", Password: "eve-password-7c1a", TOTPSecret: totpSecret})
	})
	w.writeConfig(fmt.Sprintf("[profiles.default]\nissuer = %q\nclient_id = %q\nflow = \"password\"\nusername = \"eve\"\ntotp = true\n", w.prov.Issuer(), cliClient), 0o600)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "login")
	cmd.Env = w.env
	tty, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	var out authtest.LogBuffer // written by the copy, read by the test
	done := make(chan struct{})
	go func() { _, _ = io.Copy(&out, tty); close(done) }()
	// answer types text once prompt shows and the terminal is ready for
	// it (echo off for the password: typed earlier, it would be echoed).
	answer := func(prompt, text string, quiet bool) {
		t.Helper()
		waitFor(t, func() bool { return strings.Contains(out.String(), prompt) && (!quiet || echoOff(tty)) },
			func() string { return "no " + prompt + " in:\n" + out.String() })
		if _, err := tty.Write([]byte(text + "\r")); err != nil {
			t.Fatal(err)
		}
	}
	answer("Password for eve: ", "eve-password-7c1a", true)
	code, err := totp.Code(totpSecret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	answer("One-time code: ", code, false)
	<-done
	if exit := exitCode(t, cmd.Wait()); exit != 0 || !strings.Contains(out.String(), "Logged in as eve") {
		t.Fatalf("exit %d\n%s", exit, out.String())
	}
	if strings.Contains(out.String(), "eve-password-7c1a") {
		t.Error("the password was echoed")
	}
}

// TestInterrupted: Ctrl-C (or SIGTERM) during a device login stops it at
// once with the shells' exit code, and nothing is stored.
func TestInterrupted(t *testing.T) {
	t.Parallel() // each test has its own provider, home and processes
	if runtime.GOOS == "windows" {
		t.Skip("no signals")
	}
	t.Run("SIGINT", func(t *testing.T) { interrupt(t, os.Interrupt, 130, "interrupted") })
	t.Run("SIGTERM", func(t *testing.T) { interrupt(t, syscall.SIGTERM, 143, "terminated") })
}

func interrupt(t *testing.T, sig os.Signal, want int, message string) {
	w := newWorld(t)
	w.workConfig()
	cmd := exec.Command(binary, "login")
	cmd.Env = w.env
	var stderr authtest.LogBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return strings.Contains(stderr.String(), "Waiting for the login") },
		func() string { return "no prompt:\n" + stderr.String() })
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	if code := exitCode(t, cmd.Wait()); code != want || !strings.HasSuffix(stderr.String(), "\nauthkit: "+message+"\n") {
		t.Errorf("exit %d, want %d\n%s", code, want, stderr.String())
	}
	if w.storedToken("") != nil {
		t.Error("a login was stored")
	}
}

// waitFor polls cond, which watches a child process's output, for up to
// 30 seconds (a bound on a hang, not a timing), failing with what() then.
func waitFor(t *testing.T, cond func() bool, what func() string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(what())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDemo: login --demo needs nothing but the command, for both flows.
func TestDemo(t *testing.T) {
	t.Parallel() // each test has its own provider, home and processes
	w := newWorld(t)
	tmp := filepath.Join(w.home, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	w.env = append(w.env, "TMPDIR="+tmp, "AUTHKIT_FLOW=password", "AUTHKIT_USERNAME=bob") // ignored by the demo
	r := w.run(nil, "login", "--demo")
	if r.code != 0 || !strings.Contains(r.stderr, "It approves the code as \"ada\" after 3s") || !strings.Contains(r.stderr, "Logged in as ada") {
		t.Errorf("demo: exit %d\n%s", r.code, r.stderr)
	}
	r = w.run(nil, "login", "--demo", "--flow", "browser")
	if r.code != 0 || !strings.Contains(r.stderr, "Opened your browser") || !strings.Contains(r.stderr, "Waiting for the browser until") || !strings.Contains(r.stderr, "Logged in as ada") {
		t.Errorf("demo with the browser flow: exit %d\n%s", r.code, r.stderr)
	}
	for _, dir := range []string{tmp, filepath.Join(w.home, "cache", "authkit")} {
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("the demo left %d files in %s", len(entries), dir)
		}
	}
}

// TestHelp: every command has help with examples, on stdout, exit 0; and
// --version says which authkit this is.
func TestHelp(t *testing.T) {
	t.Parallel() // each test has its own provider, home and processes
	w := newWorld(t)
	if r := w.run(nil, "--version"); r.code != 0 || r.stdout != "authkit version "+auth.Version+"\n" {
		t.Errorf("--version: exit %d %q", r.code, r.stdout)
	}
	for _, c := range []string{"", "login", "token", "status", "whoami", "logout"} {
		r := w.run(nil, strings.Fields(c+" --help")...)
		if r.code != 0 || !strings.Contains(r.stdout, "Examples:") || !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("authkit %s --help: exit %d\n%s", c, r.code, r.stdout)
		}
	}
}

// providerRequests counts the requests the provider answered at its
// discovery, key set and token endpoints.
func providerRequests(p *authtest.Provider) int {
	return p.Requests(authtest.EndpointDiscovery) + p.Requests(authtest.EndpointKeys) + p.Requests(authtest.EndpointToken)
}

// TestTokenOffline: a stored login whose access token is valid is served
// with no provider request — with the provider up, and with it stopped —
// and names the user verified when it was obtained.
func TestTokenOffline(t *testing.T) {
	t.Parallel() // each test has its own provider, home and processes
	w := newWorld(t)
	w.workConfig()
	w.login()
	want := w.storedToken("").AccessToken.Reveal()
	before := providerRequests(w.prov)
	if r := w.run(nil, "token"); r.code != 0 || r.stdout != want+"\n" {
		t.Fatalf("token with the provider up: exit %d %q\n%s", r.code, r.stdout, r.stderr)
	}
	if r := w.run(nil, "whoami"); r.code != 0 || r.stdout != "ada\t"+w.prov.Issuer()+"\n" {
		t.Fatalf("whoami with the provider up: exit %d %q\n%s", r.code, r.stdout, r.stderr)
	}
	if n := providerRequests(w.prov) - before; n != 0 {
		t.Errorf("token and whoami of a valid stored login made %d provider requests, want 0", n)
	}

	// The provider stops; its address now accepts connections and counts them.
	issuer := w.prov.Issuer()
	addr := strings.TrimPrefix(w.prov.URL(), "http://")
	w.prov.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on the stopped provider's address %s: %v", addr, err)
	}
	defer ln.Close()
	var conns atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			c.Close()
		}
	}()
	if r := w.run(nil, "token"); r.code != 0 || r.stdout != want+"\n" {
		t.Fatalf("token with the provider stopped: exit %d %q\n%s", r.code, r.stdout, r.stderr)
	}
	if r := w.run(nil, "whoami"); r.code != 0 || r.stdout != "ada\t"+issuer+"\n" {
		t.Fatalf("whoami with the provider stopped: exit %d %q\n%s", r.code, r.stdout, r.stderr)
	}
	if n := conns.Load(); n != 0 {
		t.Errorf("%d connections to the stopped provider, want 0", n)
	}
}

// TestStatusSaysItRefreshed: status refreshes an expired stored access
// token to report on a valid one, and says so; with a valid one it does not.
func TestStatusSaysItRefreshed(t *testing.T) {
	t.Parallel() // each test has its own provider, home and processes
	w := newWorld(t)
	w.workConfig()
	w.login()
	if r := w.run(nil, "status", "--profile", "work"); r.code != 0 || strings.Contains(r.stdout, "refreshed") {
		t.Errorf("status of a valid login: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	w.expireStored()
	r := w.run(nil, "status", "--profile", "work")
	if r.code != 0 || !strings.Contains(r.stdout, "refreshed just now") {
		t.Errorf("status of an expired access token: exit %d\n%s%s\nwant it to say it refreshed", r.code, r.stdout, r.stderr)
	}
	w.expireStored()
	if r := w.run(nil, "status", "--json", "--profile", "work"); !strings.Contains(r.stdout, `"refreshed": true`) && !strings.Contains(r.stdout, `"refreshed":true`) {
		t.Errorf("status --json after a refresh:\n%s", r.stdout)
	}
}

// TestWriteDevProfile: the dev profile's table is replaced where it is,
// the rest of the file — comments, other tables — kept as it was.
func TestWriteDevProfile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	before := "# mine\nprofile = \"work\"\n\n[profiles.dev]\nissuer = \"http://127.0.0.1:1\"\nclient_id = \"authkit-cli\"\n\n[profiles.work]\nissuer = \"https://sso.example.com\"\n"
	if err := os.WriteFile(path, []byte(before), 0o600); err != nil {
		t.Fatal(err)
	}
	a := &app{configPath: path, getenv: func(string) string { return "" }}
	profile := "[profiles.dev]\nissuer    = \"http://127.0.0.1:2\"\nclient_id = \"authkit-cli\"\n"
	if _, err := a.writeDevProfile(profile); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	want := "# mine\nprofile = \"work\"\n\n" + profile + "\n[profiles.work]\nissuer = \"https://sso.example.com\"\n"
	if string(got) != want {
		t.Errorf("config:\n%s\nwant:\n%s", got, want)
	}
}

// TestWorkloadProfile: in a pod, a profile with flow = "workload" gets a
// token with the pod's projected token file (AUTHKIT_FEDERATED_TOKEN_FILE)
// and no secret; without the file it says what it needs; a
// client-credentials profile with private_key_file signs private_key_jwt
// assertions instead of sending a secret.
func TestWorkloadProfile(t *testing.T) {
	t.Parallel() // each test has its own provider, home and processes
	cluster := authtest.NewProvider(authtest.ProviderConfig{})
	t.Cleanup(cluster.Close)
	const sa = "system:serviceaccount:shop:checkout"
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	w := newWorld(t, func(c *authtest.ProviderConfig) {
		c.TrustedIssuers = []authtest.TrustedIssuer{{Issuer: cluster.Issuer(), Key: cluster.PublicKey(), Audience: "platform"}}
		c.Clients = append(c.Clients,
			authtest.Client{ID: "checkout", Federated: []authtest.Federated{{Issuer: cluster.Issuer(), Subject: sa}}},
			authtest.Client{ID: "robot", PublicKeys: []crypto.PublicKey{key.Public()}})
	})
	now := time.Now()
	tokenFile := filepath.Join(w.home, "token")
	if err := os.WriteFile(tokenFile, []byte(cluster.IssueJWT(map[string]any{"iss": cluster.Issuer(), "sub": sa, "aud": "platform",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})), 0o600); err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	keyFile := filepath.Join(w.home, "robot.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	w.writeConfig(fmt.Sprintf("[profiles.pod]\nissuer = %q\nclient_id = \"checkout\"\nflow = \"workload\"\n\n"+
		"[profiles.robot]\nissuer = %q\nclient_id = \"robot\"\nflow = \"client-credentials\"\nprivate_key_file = %q\n",
		w.prov.Issuer(), w.prov.Issuer(), keyFile), 0o600)

	if r := w.run(nil, "token", "--profile", "pod"); r.code != 2 || !strings.Contains(r.stderr, "the workload flow needs a platform token") {
		t.Errorf("without a token file: exit %d\n%s", r.code, r.stderr)
	}
	r := w.run([]string{"AUTHKIT_FEDERATED_TOKEN_FILE=" + tokenFile}, "token", "--profile", "pod")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "eyJ") {
		t.Fatalf("token in the pod: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if f := w.prov.LastRequest(authtest.EndpointToken).Form; f.Get("client_assertion_type") == "" || f.Has("client_secret") {
		t.Errorf("the pod's token request: %v", f)
	}
	if r := w.run([]string{"AUTHKIT_FEDERATED_TOKEN_FILE=" + tokenFile}, "status", "--profile", "pod"); r.code != 0 || !strings.Contains(r.stdout, "pod: logged in as client checkout") {
		t.Errorf("status in the pod: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	os.Chmod(keyFile, 0o644)
	if r := w.run(nil, "login", "--profile", "robot"); r.code != 2 || !strings.Contains(r.stderr, "may be read by others (mode 0644): run `chmod 600") {
		t.Errorf("a key file others may read: exit %d\n%s", r.code, r.stderr)
	}
	os.Chmod(keyFile, 0o600)
	r = w.run(nil, "login", "--profile", "robot")
	if r.code != 0 || !strings.Contains(r.stderr, "Logged in as client robot") {
		t.Fatalf("login --profile robot: exit %d\n%s", r.code, r.stderr)
	}
	if m := w.prov.LastRequest(authtest.EndpointToken).AuthMethod; m != authtest.AuthMethodPrivateKeyJWT {
		t.Errorf("robot authenticated with %s", m)
	}
}
