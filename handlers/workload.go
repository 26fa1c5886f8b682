package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/internal/netpolicy"
	"github.com/authkit-go/authkit/internal/redact"
)

// A JWTSource supplies a JWT that someone else issued to the workload: its
// platform's identity token. The federated sources below are JWTSources
// and AssertionSources both: a [TokenExchange] exchanges one as its
// subject token; a client authenticates with one as its client assertion
// ([OAuthConfig.ClientAssertion]). Each call reads or fetches the token
// anew, because platforms rotate them.
type JWTSource interface {
	JWT(ctx context.Context) (auth.Secret, error)
}

// maxFederatedToken bounds a federated token's size.
const maxFederatedToken = 64 << 10

// WorkloadTokenError is a federated token that could not be had: a token
// file missing, empty, unreadable, a link out of its directory or not a
// JWT; a CI endpoint or a command that failed. It names the file, URL or
// command, never the token.
type WorkloadTokenError struct {
	// Source is "token file", "GitHub Actions" or "command".
	Source string
	// Where is the file, the URL without its query, or the command's name.
	Where string
	// Reason says what is wrong.
	Reason string
	// Err is the cause, if any (fs.ErrNotExist, a network error...).
	Err error
}

// Error names the source and the reason.
func (e *WorkloadTokenError) Error() string {
	s := "handlers: " + e.Source + " " + e.Where + ": " + e.Reason
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the cause.
func (e *WorkloadTokenError) Unwrap() error { return e.Err }

// checkJWT refuses what is not shaped as a compact JWS.
func checkJWT(b []byte) (auth.Secret, string) {
	s := strings.TrimSpace(string(b))
	if s == "" {
		return auth.Secret{}, "empty"
	}
	parts := strings.Split(s, ".")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || strings.ContainsAny(s, " \t\r\n") {
		return auth.Secret{}, "does not hold a JWT"
	}
	return auth.NewSecret(s), ""
}

// FederatedTokenFile is a token file the workload's platform writes and
// rotates: a Kubernetes projected service-account token (Azure's
// AZURE_FEDERATED_TOKEN_FILE, AWS's AWS_WEB_IDENTITY_TOKEN_FILE). It is
// read on every exchange, because the kubelet rotates it. A symbolic link
// is followed only within the file's directory (Kubernetes links the file
// to ..data/ beside it); one that leads elsewhere is refused.
type FederatedTokenFile struct {
	// Path is the file's path. Required.
	Path string
}

// JWT reads the token.
func (f FederatedTokenFile) JWT(ctx context.Context) (auth.Secret, error) {
	fail := func(reason string, err error) (auth.Secret, error) {
		return auth.Secret{}, &WorkloadTokenError{Source: "token file", Where: f.Path, Reason: reason, Err: err}
	}
	if err := ctx.Err(); err != nil {
		return auth.Secret{}, err
	}
	if f.Path == "" {
		return fail("no path", nil)
	}
	// Open first, then check that the file opened is the one the link
	// leads to, inside the directory: nothing can swap a path component
	// between the check and the read. The kubelet's rotation (a new
	// ..data) can fall between the two: that is worth one more try, and
	// then a transient failure.
	var b []byte
	for try := 1; ; try++ {
		data, reason, err := f.read()
		if reason == "" {
			b = data
			break
		}
		if reason == errRotated && try < 3 {
			continue
		}
		if reason == errRotated {
			if err == nil {
				err = errors.New("replaced between the open and the check")
			}
			return fail("changed while it was read", auth.Transient(err))
		}
		return fail(reason, err)
	}
	tok, why := checkJWT(b)
	if why == "empty" {
		return fail("is empty", nil)
	} else if why != "" {
		return fail(why, nil)
	}
	return tok, nil
}

// errRotated is read's reason for a file that was replaced while read.
const errRotated = "rotated"

// read reads the file, or says why not: the reason is errRotated when the
// file changed between the open and the check.
func (f FederatedTokenFile) read() ([]byte, string, error) {
	file, err := os.Open(f.Path)
	if err != nil {
		return nil, "cannot be read", unwrapPath(err)
	}
	defer file.Close()
	dir, err := filepath.EvalSymlinks(filepath.Dir(f.Path))
	if err != nil {
		return nil, "its directory is unusable", unwrapPath(err)
	}
	real, err := filepath.EvalSymlinks(f.Path)
	if err != nil {
		return nil, errRotated, unwrapPath(err)
	}
	if rel, err := filepath.Rel(dir, real); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return nil, "is a link to " + real + ", outside its directory", nil
	}
	opened, err := file.Stat()
	if err != nil {
		return nil, "cannot be read", err
	}
	named, err := os.Stat(real)
	if err != nil || !os.SameFile(opened, named) {
		return nil, errRotated, err
	}
	b, err := io.ReadAll(io.LimitReader(file, maxFederatedToken+1))
	if err != nil {
		return nil, "cannot be read", unwrapPath(err)
	}
	if len(b) > maxFederatedToken {
		return nil, fmt.Sprintf("is larger than %d bytes", maxFederatedToken), nil
	}
	return b, "", nil
}

// Assertion returns the token as a client assertion.
func (f FederatedTokenFile) Assertion(ctx context.Context, _ AssertionRequest) (auth.Secret, error) {
	return f.JWT(ctx)
}

// unwrapPath drops the *fs.PathError layer, whose text repeats the path.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Environment variables of GitHub Actions' OIDC token endpoint
// (https://docs.github.com/en/actions/security-for-github-actions/security-hardening-your-deployments/about-security-hardening-with-openid-connect).
const (
	EnvGitHubTokenURL   = "ACTIONS_ID_TOKEN_REQUEST_URL"
	EnvGitHubTokenToken = "ACTIONS_ID_TOKEN_REQUEST_TOKEN"
)

// GitHubActionsToken fetches the job's OIDC token from GitHub Actions
// (a job with "permissions: id-token: write"), for Audience, on every
// exchange.
type GitHubActionsToken struct {
	// Audience is the aud the platform's provider expects. Required.
	Audience string
	// Getenv reads ACTIONS_ID_TOKEN_REQUEST_URL and _TOKEN; nil means
	// os.Getenv.
	Getenv func(string) string
	// HTTPClient sends the request; nil means http.DefaultClient.
	HTTPClient *http.Client
}

// JWT fetches the token.
func (g GitHubActionsToken) JWT(ctx context.Context) (auth.Secret, error) {
	getenv := g.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	raw, bearer := getenv(EnvGitHubTokenURL), getenv(EnvGitHubTokenToken)
	where := redact.URL(raw)
	fail := func(reason string, err error) (auth.Secret, error) {
		return auth.Secret{}, &WorkloadTokenError{Source: "GitHub Actions", Where: where, Reason: reason, Err: err}
	}
	if raw == "" || bearer == "" {
		return fail(EnvGitHubTokenURL+" and "+EnvGitHubTokenToken+" must both be set (a job with permissions: id-token: write)", nil)
	}
	if g.Audience == "" {
		return fail("no Audience", nil)
	}
	u, err := netpolicy.CheckURL(raw)
	if err != nil {
		return fail("unusable URL", err)
	}
	q := u.Query()
	q.Set("audience", g.Audience)
	u.RawQuery = q.Encode()
	if g.HTTPClient != nil && g.HTTPClient.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.HTTPClient.Timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fail("unusable URL", nil)
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	req.Header.Set("Accept", "application/json")
	rt := http.DefaultTransport // never follows a redirect with the bearer
	if g.HTTPClient != nil && g.HTTPClient.Transport != nil {
		rt = g.HTTPClient.Transport
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fail("request failed", auth.Transient(err))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxFederatedToken+1))
	if resp.StatusCode != http.StatusOK {
		scrub := &redact.Scrubber{}
		scrub.Add(bearer)
		var cause error
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
			cause = auth.Transient(fmt.Errorf("HTTP %d", resp.StatusCode)) // retried with backoff
		}
		return fail(fmt.Sprintf("HTTP %d: %s", resp.StatusCode, redact.Excerpt(body, scrub)), cause)
	}
	var v struct {
		Value string `json:"value"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return fail("the answer is not JSON with a value", nil)
	}
	tok, why := checkJWT([]byte(v.Value))
	if why != "" {
		return fail("the answer's value is not a JWT", nil)
	}
	return tok, nil
}

// Assertion returns the token as a client assertion.
func (g GitHubActionsToken) Assertion(ctx context.Context, _ AssertionRequest) (auth.Secret, error) {
	return g.JWT(ctx)
}

// CommandToken runs a command whose standard output is the token (the exec
// model of kubectl credential plugins and AWS's credential_process): no
// shell, a timeout, and the token checked to be a JWT. A kubectl
// ExecCredential (JSON with status.token) is read too.
type CommandToken struct {
	// Command is the program and its arguments, run without a shell.
	// Required.
	Command []string
	// Timeout bounds a run; zero means 30 seconds.
	Timeout time.Duration
	// Env is the command's environment; nil means the process's.
	Env []string
}

// JWT runs the command.
func (c CommandToken) JWT(ctx context.Context) (auth.Secret, error) {
	name := ""
	if len(c.Command) > 0 {
		name = c.Command[0]
	}
	fail := func(reason string, err error) (auth.Secret, error) {
		return auth.Secret{}, &WorkloadTokenError{Source: "command", Where: name, Reason: reason, Err: err}
	}
	if name == "" {
		return fail("no command", nil)
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, c.Command[1:]...)
	cmd.Env = c.Env
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &limitedWriter{w: &stdout, n: maxFederatedToken + 1}
	cmd.Stderr = &limitedWriter{w: &stderr, n: 4 << 10}
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return fail(fmt.Sprintf("no token within %s", timeout), ctx.Err())
		}
		scrub := &redact.Scrubber{}
		scrub.Add(strings.TrimSpace(stdout.String()))
		msg := strings.TrimSpace(redact.Excerpt(stderr.Bytes(), scrub))
		if msg != "" {
			return fail("failed: "+msg, err)
		}
		return fail("failed", err)
	}
	out := bytes.TrimSpace(stdout.Bytes())
	if len(out) > 0 && out[0] == '{' {
		var ec struct {
			Status struct {
				Token string `json:"token"`
			} `json:"status"`
		}
		if json.Unmarshal(out, &ec) != nil || ec.Status.Token == "" {
			return fail("printed JSON that is not an ExecCredential with status.token", nil)
		}
		out = []byte(ec.Status.Token)
	}
	tok, why := checkJWT(out)
	if why == "empty" {
		return fail("printed no token", nil)
	} else if why != "" {
		return fail("printed no JWT", nil)
	}
	return tok, nil
}

// Assertion returns the token as a client assertion.
func (c CommandToken) Assertion(ctx context.Context, _ AssertionRequest) (auth.Secret, error) {
	return c.JWT(ctx)
}

// limitedWriter keeps the first n bytes written to it and drops the rest.
type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}
