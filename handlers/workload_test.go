package handlers

import (
	"context"
	"crypto"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/authtest"
)

// cluster is a Kubernetes-like issuer of service-account tokens, trusted
// by the platform's provider.
type cluster struct {
	issuer *authtest.Provider
	clk    *authtest.Clock
}

const (
	saSubject  = "system:serviceaccount:shop:checkout"
	saAudience = "platform"
)

func newCluster(t *testing.T, clk *authtest.Clock) *cluster {
	t.Helper()
	cfg := authtest.ProviderConfig{}
	if clk != nil {
		cfg.Clock = clk
	}
	p := authtest.NewProvider(cfg)
	t.Cleanup(p.Close)
	return &cluster{issuer: p, clk: clk}
}

// token mints a service-account token for sub, valid for an hour.
func (c *cluster) token(sub string) string {
	now := time.Now()
	if c.clk != nil {
		now = c.clk.Now()
	}
	return c.issuer.IssueJWT(map[string]any{"iss": c.issuer.Issuer(), "sub": sub, "aud": saAudience,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})
}

func (c *cluster) trusted(exchangeAudiences ...string) authtest.TrustedIssuer {
	return authtest.TrustedIssuer{Issuer: c.issuer.Issuer(), Key: c.issuer.PublicKey(), Audience: saAudience,
		ExchangeAudiences: exchangeAudiences}
}

// projected writes token as Kubernetes projects it: dir/token is a link
// to ..data/token, ..data a link to a timestamped directory, swapped
// atomically on rotation.
func projected(t *testing.T, dir, token string) string {
	t.Helper()
	gen := filepath.Join(dir, "..gen-"+time.Now().Format("150405.000000000"))
	if err := os.Mkdir(gen, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(gen, "token"), []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(gen), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "token")
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		if err := os.Symlink(filepath.Join("..data", "token"), path); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func subjectOf(t *testing.T, access string) string {
	t.Helper()
	tok, _, err := jwt.NewParser().ParseUnverified(access, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	sub, _ := tok.Claims.GetSubject()
	return sub
}

// TestTokenExchangeOfARotatedTokenFile: a pod's projected token is
// exchanged (RFC 8693) for the platform's access token; the kubelet
// rotates the file between two exchanges, and the second exchange sends
// the new token. The wire carries the grant, the subject token and its
// type, and the audience.
func TestTokenExchangeOfARotatedTokenFile(t *testing.T) {
	clk := authtest.NewClock(time.Time{})
	k8s := newCluster(t, clk)
	p := newProvider(t, clk, func(c *authtest.ProviderConfig) {
		c.TrustedIssuers = []authtest.TrustedIssuer{k8s.trusted("hub")}
		c.AccessTokenLifetime = time.Minute
	})
	dir := t.TempDir()
	path := projected(t, dir, k8s.token(saSubject))
	h, err := NewTokenExchange(TokenExchangeConfig{
		OAuthConfig:  OAuthConfig{Endpoints: Endpoints{TokenURL: p.TokenURL()}, ClientID: "svc", ClientSecret: auth.NewSecret(svcSecret), Audiences: []string{"hub"}, Clock: clk},
		SubjectToken: FederatedTokenFile{Path: path},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ctx := context.Background()
	tok, err := h.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := subjectOf(t, tok.AccessToken.Reveal()); got != saSubject {
		t.Errorf("the access token's subject is %q, want %q", got, saSubject)
	}
	f := p.LastRequest(authtest.EndpointToken).Form
	if f.Get("grant_type") != GrantTokenExchange || f.Get("subject_token_type") != TokenTypeJWT ||
		subjectOf(t, f.Get("subject_token")) != saSubject || f.Get("audience") != "hub" || f.Has("requested_token_type") {
		t.Errorf("form %v", f)
	}

	projected(t, dir, k8s.token("system:serviceaccount:shop:rotated"))
	clk.Advance(time.Minute)
	tok, err = h.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := subjectOf(t, tok.AccessToken.Reveal()); got != "system:serviceaccount:shop:rotated" {
		t.Errorf("after rotation the access token's subject is %q: the file was not read again", got)
	}
}

// TestTokenExchangeRefusalsAreTerminal: an audience the provider's policy
// does not allow is invalid_target; a subject token of an untrusted
// issuer is invalid_grant: typed, terminal, and the subject token in no
// error.
func TestTokenExchangeRefusalsAreTerminal(t *testing.T) {
	k8s, stranger := newCluster(t, nil), newCluster(t, nil)
	p := newProvider(t, nil, func(c *authtest.ProviderConfig) {
		c.TrustedIssuers = []authtest.TrustedIssuer{k8s.trusted("hub")}
	})
	for _, tt := range []struct {
		name, subject, audience, code string
	}{
		{"audience not allowed", k8s.token(saSubject), "billing", "invalid_target"},
		{"untrusted issuer", stranger.token(saSubject), "hub", "invalid_grant"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			subject := tt.subject
			h, err := NewTokenExchange(TokenExchangeConfig{
				OAuthConfig: OAuthConfig{Endpoints: Endpoints{TokenURL: p.TokenURL()}, ClientID: "svc", ClientSecret: auth.NewSecret(svcSecret), Audiences: []string{tt.audience}},
				SubjectToken: JWTSourceFunc(func(context.Context) (auth.Secret, error) {
					return auth.NewSecret(subject), nil
				}),
			})
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			err = h.Authenticate(context.Background())
			var oe *auth.OAuthError
			if !errors.As(err, &oe) || oe.Code != tt.code || auth.IsTransient(err) {
				t.Fatalf("err = %v, want a terminal %s", err, tt.code)
			}
			if strings.Contains(err.Error(), subject) {
				t.Error("the error holds the subject token")
			}
		})
	}
}

// TestTokenExchangeServerErrorIsTransient: a 5xx is retried.
func TestTokenExchangeServerErrorIsTransient(t *testing.T) {
	k8s := newCluster(t, nil)
	p := newProvider(t, nil, func(c *authtest.ProviderConfig) { c.TrustedIssuers = []authtest.TrustedIssuer{k8s.trusted()} })
	p.FailNext(2, 503, "temporarily_unavailable")
	h, _ := NewTokenExchange(TokenExchangeConfig{
		OAuthConfig:  OAuthConfig{Endpoints: Endpoints{TokenURL: p.TokenURL()}, ClientID: "svc", ClientSecret: auth.NewSecret(svcSecret)},
		SubjectToken: JWTSourceFunc(func(context.Context) (auth.Secret, error) { return auth.NewSecret(k8s.token(saSubject)), nil }),
	})
	defer h.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.Authenticate(ctx); err != nil {
		t.Fatalf("after two 503s: %v", err)
	}
}

// TestFederatedClientAssertion: the pod's token is the client assertion
// of a client credentials grant (Azure's workload identity model): no
// secret anywhere.
func TestFederatedClientAssertion(t *testing.T) {
	k8s := newCluster(t, nil)
	p := newProvider(t, nil, func(c *authtest.ProviderConfig) {
		c.TrustedIssuers = []authtest.TrustedIssuer{k8s.trusted()}
		c.Clients = append(c.Clients, authtest.Client{ID: "checkout", Federated: []authtest.Federated{{Issuer: k8s.issuer.Issuer(), Subject: saSubject}}})
	})
	path := projected(t, t.TempDir(), k8s.token(saSubject))
	h, err := NewClientCredentials(ClientCredentialsConfig{OAuthConfig: OAuthConfig{
		Endpoints: Endpoints{TokenURL: p.TokenURL()}, ClientID: "checkout", ClientAssertion: FederatedTokenFile{Path: path}}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.Authenticate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if f := p.LastRequest(authtest.EndpointToken).Form; f.Get("client_assertion_type") != ClientAssertionType || f.Has("client_secret") {
		t.Errorf("form %v", f)
	}
	// Another service account of the cluster may not act as this client.
	projected(t, filepath.Dir(path), k8s.token("system:serviceaccount:shop:intruder"))
	h2, _ := NewClientCredentials(ClientCredentialsConfig{OAuthConfig: OAuthConfig{
		Endpoints: Endpoints{TokenURL: p.TokenURL()}, ClientID: "checkout", ClientAssertion: FederatedTokenFile{Path: path}}})
	defer h2.Close()
	var oe *auth.OAuthError
	if err := h2.Authenticate(context.Background()); !errors.As(err, &oe) || oe.Code != "invalid_client" {
		t.Errorf("another subject: %v, want invalid_client", err)
	}
}

// TestFederatedTokenFileErrors: every way a token file can be unusable is
// a *WorkloadTokenError naming the file and never its content.
func TestFederatedTokenFileErrors(t *testing.T) {
	dir := t.TempDir()
	outside := filepath.Join(t.TempDir(), "elsewhere")
	content := "eyJhbGciOiJub25lIn0.eyJzdWIiOiJTRUNSRVQifQ.c2ln"
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	os.WriteFile(outside, []byte(content), 0o600)
	link := filepath.Join(dir, "link")
	os.Symlink(outside, link)
	for _, tt := range []struct {
		name, path, reason string
		is                 error
	}{
		{"missing", filepath.Join(dir, "nope"), "cannot be read", fs.ErrNotExist},
		{"empty", write("empty", " \n"), "is empty", nil},
		{"not a JWT", write("text", "SECRET-not-a-jwt value"), "does not hold a JWT", nil},
		{"a link out of its directory", link, "outside its directory", nil},
		{"a directory", dir, "cannot be read", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := FederatedTokenFile{Path: tt.path}.JWT(context.Background())
			var we *WorkloadTokenError
			if !errors.As(err, &we) || we.Where != tt.path || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("err = %v, want a WorkloadTokenError naming %s: %s", err, tt.path, tt.reason)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("err = %v, want errors.Is %v", err, tt.is)
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Errorf("the error holds the file's content: %v", err)
			}
		})
	}
	if tok, err := (FederatedTokenFile{Path: write("ok", content+"\n")}).JWT(context.Background()); err != nil || tok.Reveal() != content {
		t.Errorf("a good file: %v", err)
	}
}

// TestGitHubActionsExchange: a CI job's OIDC token, fetched from the
// Actions endpoint with the job's request token for the audience the
// platform expects, is exchanged for an access token.
func TestGitHubActionsExchange(t *testing.T) {
	gh := newCluster(t, nil) // GitHub's issuer
	actions := authtest.NewGitHubActions(gh.issuer, "repo:octo/app:ref:refs/heads/main")
	defer actions.Close()
	p := newProvider(t, nil, func(c *authtest.ProviderConfig) {
		c.TrustedIssuers = []authtest.TrustedIssuer{{Issuer: gh.issuer.Issuer(), Key: gh.issuer.PublicKey(), Audience: "https://platform.example"}}
	})
	env := actions.Env()
	h, err := NewTokenExchange(TokenExchangeConfig{
		OAuthConfig:  OAuthConfig{Endpoints: Endpoints{TokenURL: p.TokenURL()}, ClientID: "svc", ClientSecret: auth.NewSecret(svcSecret)},
		SubjectToken: GitHubActionsToken{Audience: "https://platform.example", Getenv: func(k string) string { return env[k] }},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	tok, err := h.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := subjectOf(t, tok.AccessToken.Reveal()); got != "repo:octo/app:ref:refs/heads/main" {
		t.Errorf("subject %q", got)
	}
	// A wrong request token: a typed error without the token.
	env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"] = "wrong-SECRET-request-token"
	_, err = GitHubActionsToken{Audience: "x", Getenv: func(k string) string { return env[k] }}.JWT(context.Background())
	var we *WorkloadTokenError
	if !errors.As(err, &we) || strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), "api-version") {
		t.Errorf("err = %v", err)
	}
}

// TestCommandToken: a command's output is the token; no shell; a command
// that fails, prints no JWT or hangs past its timeout is a typed error.
func TestCommandToken(t *testing.T) {
	jwtText := "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.c2ln"
	ctx := context.Background()
	if tok, err := (CommandToken{Command: []string{"echo", jwtText}}).JWT(ctx); err != nil || tok.Reveal() != jwtText {
		t.Fatalf("echo: %q, %v", tok.Reveal(), err)
	}
	if tok, err := (CommandToken{Command: []string{"echo", `{"apiVersion":"client.authentication.k8s.io/v1","status":{"token":"` + jwtText + `"}}`}}).JWT(ctx); err != nil || tok.Reveal() != jwtText {
		t.Fatalf("an ExecCredential: %q, %v", tok.Reveal(), err)
	}
	for _, tt := range []struct {
		name   string
		cmd    CommandToken
		reason string
	}{
		{"no shell", CommandToken{Command: []string{"echo $HOME; true"}}, "failed"},
		{"fails", CommandToken{Command: []string{"false"}}, "failed"},
		{"prints no JWT", CommandToken{Command: []string{"echo", "SECRET-opaque"}}, "printed no JWT"},
		{"hangs", CommandToken{Command: []string{"sleep", "30"}, Timeout: 200 * time.Millisecond}, "no token within 200ms"},
	} {
		_, err := tt.cmd.JWT(ctx)
		var we *WorkloadTokenError
		if !errors.As(err, &we) || !strings.Contains(err.Error(), tt.reason) || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.reason)
		}
	}
}

// TestSelectWorkloadSources: the workload sources come after the
// environment's client credentials and before a stored login, in the
// order federated token file, GitHub Actions, token command; each one
// chosen gets a token with no secret anywhere; each one skipped is named
// in ErrNoCredentials; a client id with neither secret nor workload token
// is a configuration error.
func TestSelectWorkloadSources(t *testing.T) {
	k8s := newCluster(t, nil)
	actions := authtest.NewGitHubActions(k8s.issuer, saSubject)
	defer actions.Close()
	p := newProvider(t, nil, func(c *authtest.ProviderConfig) {
		c.TrustedIssuers = []authtest.TrustedIssuer{k8s.trusted()}
		c.Clients = append(c.Clients, authtest.Client{ID: "checkout", Federated: []authtest.Federated{{Issuer: k8s.issuer.Issuer(), Subject: saSubject}}})
	})
	path := projected(t, t.TempDir(), k8s.token(saSubject))
	script := filepath.Join(t.TempDir(), "token.sh")
	os.WriteFile(script, []byte("#!/bin/sh\ncat "+path+"\n"), 0o700)
	gh := actions.Env()
	base := map[string]string{"AUTHKIT_CLIENT_ID": "checkout"}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	all := with(map[string]string{"AUTHKIT_FEDERATED_TOKEN_FILE": path, "AUTHKIT_FEDERATED_TOKEN_COMMAND": script,
		"ACTIONS_ID_TOKEN_REQUEST_URL": gh["ACTIONS_ID_TOKEN_REQUEST_URL"], "ACTIONS_ID_TOKEN_REQUEST_TOKEN": gh["ACTIONS_ID_TOKEN_REQUEST_TOKEN"]})
	for _, tt := range []struct {
		name string
		env  map[string]string
		want Source
	}{
		{"client credentials first", with(map[string]string{"AUTHKIT_CLIENT_ID": "svc", "AUTHKIT_CLIENT_SECRET": svcSecret, "AUTHKIT_FEDERATED_TOKEN_FILE": path}), SourceClientCredentialsEnv},
		{"token file before GitHub and command", all, SourceFederatedTokenFile},
		{"GitHub before command", func() map[string]string { m := with(all); delete(m, "AUTHKIT_FEDERATED_TOKEN_FILE"); return m }(), SourceGitHubActions},
		{"command", with(map[string]string{"AUTHKIT_FEDERATED_TOKEN_COMMAND": script}), SourceTokenCommand},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Select(context.Background(), SelectConfig{Getenv: envOf(tt.env),
				OAuth: OAuthConfig{Endpoints: Endpoints{TokenURL: p.TokenURL()}}, Workload: WorkloadConfig{GitHubAudience: saAudience}})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.Source != tt.want {
				t.Fatalf("source %q, want %q", s.Source, tt.want)
			}
			if err := s.Authenticate(context.Background()); err != nil {
				t.Fatalf("%s: %v", s.Source, err)
			}
		})
	}
	t.Run("token exchange", func(t *testing.T) {
		s, err := Select(context.Background(), SelectConfig{Getenv: envOf(map[string]string{"AUTHKIT_FEDERATED_TOKEN_FILE": path}),
			OAuth: OAuthConfig{Endpoints: Endpoints{TokenURL: p.TokenURL()}, ClientID: "cli"}, Workload: WorkloadConfig{Exchange: WorkloadTokenExchange}})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.Authenticate(context.Background()); err != nil || p.LastRequest(authtest.EndpointToken).Form.Get("grant_type") != GrantTokenExchange {
			t.Fatalf("%v; form %v", err, p.LastRequest(authtest.EndpointToken).Form)
		}
	})
	t.Run("GitHub without an audience is skipped and named", func(t *testing.T) {
		_, err := Select(context.Background(), SelectConfig{Getenv: envOf(gh)})
		if !errors.Is(err, ErrNoCredentials) || !strings.Contains(err.Error(), "GitHub Actions OIDC token (environment): no audience configured (Workload.GitHubAudience)") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("a client id alone", func(t *testing.T) {
		_, err := Select(context.Background(), SelectConfig{Getenv: envOf(base)})
		if !errors.Is(err, auth.ErrInvalidConfig) || !strings.Contains(err.Error(), "AUTHKIT_FEDERATED_TOKEN_FILE") {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestJWTBearerGrant: the JWT bearer grant (RFC 7523 §2.1) with a
// self-signed service identity — the wire carries the grant type and an
// assertion that verifies with the client's public key, iss and sub the
// client, aud the token endpoint — and with a federated token of a
// trusted issuer, whose subject the access token then names.
func TestJWTBearerGrant(t *testing.T) {
	key := testKeys()["ES256"]
	k8s := newCluster(t, nil)
	p := newProvider(t, nil, func(c *authtest.ProviderConfig) {
		c.Clients = append(c.Clients, authtest.Client{ID: "robot", PublicKeys: []crypto.PublicKey{key.Public()}})
		c.TrustedIssuers = []authtest.TrustedIssuer{k8s.trusted()}
	})
	self, _ := NewPrivateKeyJWT(PrivateKeyJWTConfig{Key: key})
	path := projected(t, t.TempDir(), k8s.token(saSubject))
	for _, tt := range []struct {
		name    string
		src     AssertionSource
		subject string
	}{
		{"self-signed", self, "robot"},
		{"federated", FederatedTokenFile{Path: path}, saSubject},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h, err := NewJWTBearer(JWTBearerConfig{OAuthConfig: OAuthConfig{Endpoints: Endpoints{TokenURL: p.TokenURL()}, ClientID: "robot"}, Assertion: tt.src})
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			tok, err := h.Token(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if got := subjectOf(t, tok.AccessToken.Reveal()); got != tt.subject {
				t.Errorf("subject %q, want %q", got, tt.subject)
			}
			f := p.LastRequest(authtest.EndpointToken).Form
			if f.Get("grant_type") != GrantJWTBearer || f.Get("client_id") != "robot" {
				t.Errorf("form %v", f)
			}
			if tt.src == self {
				a, err := jwt.Parse(f.Get("assertion"), func(*jwt.Token) (any, error) { return key.Public(), nil })
				if err != nil {
					t.Fatal(err)
				}
				c := a.Claims.(jwt.MapClaims)
				if c["iss"] != "robot" || c["sub"] != "robot" || c["aud"] != p.TokenURL() {
					t.Errorf("claims %v", c)
				}
			}
		})
	}
}

// TestGitHubActionsServerErrorIsTransient: a 503 or 429 from the Actions
// token endpoint is retried with backoff; a 401 is not.
func TestGitHubActionsServerErrorIsTransient(t *testing.T) {
	for _, tt := range []struct {
		status    int
		transient bool
	}{{503, true}, {429, true}, {401, false}} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(tt.status) }))
		env := map[string]string{EnvGitHubTokenURL: srv.URL + "/idtoken", EnvGitHubTokenToken: "req"}
		_, err := GitHubActionsToken{Audience: "a", Getenv: func(k string) string { return env[k] }}.JWT(context.Background())
		srv.Close()
		var we *WorkloadTokenError
		if !errors.As(err, &we) || auth.IsTransient(err) != tt.transient {
			t.Errorf("HTTP %d: %v (transient %t), want transient %t", tt.status, err, auth.IsTransient(err), tt.transient)
		}
	}
}
