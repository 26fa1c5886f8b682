package authtest

import (
	"crypto/subtle"
	"net/http"
	"net/http/httptest"
	"time"
)

// GitHubActions is a fake of GitHub Actions' OIDC token endpoint: a job's
// ACTIONS_ID_TOKEN_REQUEST_URL, which answers a GET carrying the job's
// ACTIONS_ID_TOKEN_REQUEST_TOKEN as a bearer token with {"value": JWT},
// the JWT signed by Issuer for the "audience" query parameter. Add the
// issuer to a provider's ProviderConfig.TrustedIssuers (with Audience
// the one the job asks for) to exchange its tokens there.
type GitHubActions struct {
	srv     *httptest.Server
	issuer  *Provider
	token   string
	subject string
}

// NewGitHubActions starts the endpoint; tokens are signed by issuer, with
// sub subject (e.g. "repo:octo/app:ref:refs/heads/main"). Close it.
func NewGitHubActions(issuer *Provider, subject string) *GitHubActions {
	g := &GitHubActions{issuer: issuer, token: "gha-request-" + randomString(16), subject: subject}
	g.srv = httptest.NewServer(http.HandlerFunc(g.serve))
	return g
}

// Env returns the job's two variables.
func (g *GitHubActions) Env() map[string]string {
	return map[string]string{
		"ACTIONS_ID_TOKEN_REQUEST_URL":   g.srv.URL + "/_apis/pipelines/workflows/1/idtoken?api-version=2.0",
		"ACTIONS_ID_TOKEN_REQUEST_TOKEN": g.token,
	}
}

// Close stops the endpoint.
func (g *GitHubActions) Close() { g.srv.Close() }

func (g *GitHubActions) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+g.token)) != 1 {
		http.Error(w, "bad request token", http.StatusUnauthorized)
		return
	}
	aud := r.URL.Query().Get("audience")
	if aud == "" {
		http.Error(w, "audience is required", http.StatusBadRequest)
		return
	}
	now := g.issuer.now()
	jwt := g.issuer.IssueJWT(map[string]any{
		"iss": g.issuer.Issuer(), "sub": g.subject, "aud": aud, "iat": now.Unix(), "nbf": now.Unix(),
		"exp": now.Add(10 * time.Minute).Unix(), "jti": randomString(16), "repository": "octo/app",
	})
	writeJSON(w, http.StatusOK, map[string]string{"value": jwt})
}
