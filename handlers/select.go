package handlers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/authkit-go/authkit/auth"
)

// Names of the environment variables [Select] reads, after
// SelectConfig.EnvPrefix (by default "AUTHKIT_").
const (
	EnvAPIKeyID     = "API_KEY_ID"    // the API key's id
	EnvAPIKey       = "API_KEY"       // the API key
	EnvAPIKeyUser   = "API_KEY_USER"  // the key's user, for Username (default: the key id)
	EnvClientID     = "CLIENT_ID"     // a client credentials client
	EnvClientSecret = "CLIENT_SECRET" // its secret
	// EnvFederatedTokenFile is a token file the platform rotates (a
	// Kubernetes projected service-account token), exchanged as
	// SelectConfig.Workload says.
	EnvFederatedTokenFile = "FEDERATED_TOKEN_FILE"
	// EnvFederatedTokenCommand is a command (split on spaces, run without
	// a shell) whose standard output is the token.
	EnvFederatedTokenCommand = "FEDERATED_TOKEN_COMMAND"
)

// DefaultEnvPrefix is the prefix of the environment variables [Select]
// reads when SelectConfig.EnvPrefix is empty. An SDK sets its own.
const DefaultEnvPrefix = "AUTHKIT_"

// Source names where [Select] found the credentials.
type Source string

// The sources of [Select], in the order they are tried.
const (
	SourceJWTCallback          Source = "externally managed JWT (in code)"
	SourceAPIKeys              Source = "API keys (in code)"
	SourceAPIKeysEnv           Source = "API keys (environment)"
	SourceClientCredentialsEnv Source = "client credentials (environment)"
	SourceFederatedTokenFile   Source = "federated token file (environment)"
	SourceGitHubActions        Source = "GitHub Actions OIDC token (environment)"
	SourceTokenCommand         Source = "federated token command (environment)"
	SourceStoredLogin          Source = "stored login"
	SourceInteractive          Source = "interactive login"
)

// Interactive chooses the login [Select] falls back to.
type Interactive int

const (
	// InteractiveNone: no interactive login; Select fails instead.
	InteractiveNone Interactive = iota
	// InteractiveDevice: the device authorization grant ([DeviceCode]).
	InteractiveDevice
	// InteractiveBrowser: the browser login ([BrowserLogin]), falling back
	// to a device code where no browser can be opened.
	InteractiveBrowser
)

// SelectConfig configures [Select]. Every field is optional; a source
// whose configuration is absent is skipped, one that is half configured is
// an error.
type SelectConfig struct {
	// JWT, when its Callback is set, is the first choice: the application
	// owns the login and hands its JWT over.
	JWT ExternallyManagedJWTConfig
	// APIKeys, when KeyID or Key is set, come next.
	APIKeys APIKeysConfig
	// EnvPrefix prefixes the environment variables (EnvAPIKeyID...); empty
	// means DefaultEnvPrefix.
	EnvPrefix string
	// Getenv reads the environment; nil means os.Getenv.
	Getenv func(string) string
	// OAuth locates the provider (Endpoints) for the client credentials of
	// the environment, and, with ClientID, is the public client of the
	// stored and interactive logins; its Store holds those logins.
	OAuth OAuthConfig
	// Workload says how a workload's platform token (a federated token
	// file, GitHub Actions' OIDC token, a token command) is exchanged.
	Workload WorkloadConfig
	// Interactive is the login of last resort; the zero value is none.
	Interactive Interactive
	// Prompt shows a device code (see [DeviceCodeConfig.Prompt]).
	Prompt func(ctx context.Context, p DevicePrompt) error
	// Output receives what the interactive logins print; nil means os.Stderr.
	Output io.Writer
}

// WorkloadExchange says how [Select] turns a workload's platform token
// into an access token.
type WorkloadExchange int

const (
	// WorkloadClientAssertion sends the platform token as the client
	// assertion of a client credentials grant (RFC 7523 §2.2; Azure's and
	// Google's workload identity federation).
	WorkloadClientAssertion WorkloadExchange = iota
	// WorkloadTokenExchange exchanges it as the subject token of RFC 8693
	// token exchange.
	WorkloadTokenExchange
)

// WorkloadConfig configures the workload sources of [Select].
type WorkloadConfig struct {
	// Exchange is how the platform token is exchanged; the zero value is
	// WorkloadClientAssertion.
	Exchange WorkloadExchange
	// ClientID is the client the workload acts as; <prefix>CLIENT_ID
	// overrides it. A client assertion needs one; a token exchange falls
	// back to OAuth.ClientID.
	ClientID string
	// GitHubAudience is the aud of the GitHub Actions OIDC token, as the
	// platform's provider expects it; empty skips GitHub Actions.
	GitHubAudience string
	// CommandTimeout bounds the token command; zero means 30 seconds.
	CommandTimeout time.Duration
}

// Selected is the handler [Select] chose, and where its credentials come
// from.
type Selected struct {
	auth.AuthenticationHandler
	// Source is where the credentials come from.
	Source Source
}

var (
	_ auth.Invalidator          = (*Selected)(nil)
	_ auth.RequestAuthenticator = (*Selected)(nil)
	_ auth.TokenReader          = (*Selected)(nil)
)

// Invalidate passes a rejection on to the handler when it takes them
// ([auth.Invalidator]), so that a session or grpcauth gets a new credential
// after a 401 or Unauthenticated.
func (s *Selected) Invalidate(svc auth.Service, rejected string) {
	if inv, ok := s.AuthenticationHandler.(auth.Invalidator); ok {
		inv.Invalidate(svc, rejected)
	}
}

// RequestHeaders returns svc's headers for one request: the handler's own
// ([auth.RequestAuthenticator]: a DPoP-bound token with its proof), else
// its getters'.
func (s *Selected) RequestHeaders(ctx context.Context, svc auth.Service, method string, target *url.URL, nonce string) (http.Header, error) {
	if ra, ok := s.AuthenticationHandler.(auth.RequestAuthenticator); ok {
		return ra.RequestHeaders(ctx, svc, method, target, nonce)
	}
	if svc == auth.ServiceAccessManager {
		return s.AccessManagerRequestHeaders(ctx)
	}
	return s.HubRequestHeaders(ctx)
}

// RequestMetadata returns the message service's metadata for one RPC: the
// handler's own ([auth.RequestAuthenticator]), else its getter's.
func (s *Selected) RequestMetadata(ctx context.Context, audience, fullMethod, nonce string) (map[string]string, error) {
	if ra, ok := s.AuthenticationHandler.(auth.RequestAuthenticator); ok {
		return ra.RequestMetadata(ctx, audience, fullMethod, nonce)
	}
	return s.MessageServiceMetadata(ctx)
}

// Token returns the handler's token ([auth.TokenReader]), or an error
// wrapping auth.ErrUnsupportedTokenType for credentials that are not a
// token (API keys).
func (s *Selected) Token(ctx context.Context) (*auth.Token, error) {
	if r, ok := s.AuthenticationHandler.(auth.TokenReader); ok {
		return r.Token(ctx)
	}
	return nil, fmt.Errorf("%w: %s credentials are not a token", auth.ErrUnsupportedTokenType, s.Source)
}

// Close closes the handler.
func (s *Selected) Close() error {
	if c, ok := s.AuthenticationHandler.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// ErrNoCredentials means [Select] found no usable source; the error lists
// every source tried and why it was skipped.
var ErrNoCredentials = errors.New("handlers: no credentials configured")

// Select returns the handler of the first configured source, in this
// order, as azidentity's DefaultAzureCredential does for Azure:
//
//  1. an externally managed JWT callback given in code (cfg.JWT);
//  2. API keys given in code (cfg.APIKeys);
//  3. API keys from the environment (<prefix>API_KEY_ID, <prefix>API_KEY,
//     optionally <prefix>API_KEY_USER);
//  4. client credentials from the environment (<prefix>CLIENT_ID,
//     <prefix>CLIENT_SECRET) at cfg.OAuth's endpoints;
//  5. workload identity, with no secret: a federated token file
//     (<prefix>FEDERATED_TOKEN_FILE), GitHub Actions' OIDC token
//     (ACTIONS_ID_TOKEN_REQUEST_URL and _TOKEN, with
//     cfg.Workload.GitHubAudience), a token command
//     (<prefix>FEDERATED_TOKEN_COMMAND), in this order; the token is read
//     anew for every exchange and exchanged as cfg.Workload.Exchange says,
//     as the client <prefix>CLIENT_ID (or cfg.Workload.ClientID);
//  6. a login stored in cfg.OAuth.Store for cfg.OAuth's client (read now,
//     refreshed if needed, without prompting);
//  7. an interactive login (cfg.Interactive), which runs at Authenticate.
//
// A source that is half configured (a key id without its key, a client id
// without its secret) is an error wrapping [auth.ErrInvalidConfig], never a
// silent fall-through. When nothing is usable the error wraps
// [ErrNoCredentials] and says, for each source, why it was skipped; it
// never holds a secret. ctx bounds the reading of the stored login.
func Select(ctx context.Context, cfg SelectConfig) (*Selected, error) {
	prefix := cfg.EnvPrefix
	if prefix == "" {
		prefix = DefaultEnvPrefix
	}
	getenv := cfg.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	env := func(name string) string { return strings.TrimSpace(getenv(prefix + name)) }
	var skipped []string
	skip := func(s Source, why string) { skipped = append(skipped, fmt.Sprintf("%s: %s", s, why)) }
	pick := func(h auth.AuthenticationHandler, s Source, err error) (*Selected, error) {
		if err != nil {
			return nil, fmt.Errorf("handlers: %s: %w", s, err)
		}
		return &Selected{AuthenticationHandler: h, Source: s}, nil
	}

	if cfg.JWT.Callback != nil {
		h, err := NewExternallyManagedJWT(cfg.JWT)
		return pick(h, SourceJWTCallback, err)
	}
	skip(SourceJWTCallback, "no callback given")

	if cfg.APIKeys.KeyID != "" || !cfg.APIKeys.Key.IsZero() {
		h, err := NewAPIKeys(cfg.APIKeys)
		return pick(h, SourceAPIKeys, err)
	}
	skip(SourceAPIKeys, "none given")

	id, key := env(EnvAPIKeyID), env(EnvAPIKey)
	switch {
	case id != "" && key != "":
		user := env(EnvAPIKeyUser)
		if user == "" {
			user = id
		}
		h, err := NewAPIKeys(APIKeysConfig{KeyID: id, Key: auth.NewSecret(key), Username: user, Wire: cfg.APIKeys.Wire,
			HubValuesBeforeColon: cfg.APIKeys.HubValuesBeforeColon})
		return pick(h, SourceAPIKeysEnv, err)
	case id != "" || key != "":
		return nil, halfSet(prefix, EnvAPIKeyID, EnvAPIKey, id != "")
	}
	skip(SourceAPIKeysEnv, fmt.Sprintf("%s%s and %s%s are not set", prefix, EnvAPIKeyID, prefix, EnvAPIKey))

	cid, csecret := env(EnvClientID), env(EnvClientSecret)
	switch {
	case cid != "" && csecret != "":
		c := cfg.OAuth
		c.ClientID, c.ClientSecret = cid, auth.NewSecret(csecret)
		c.Store = nil // a service's tokens are cheap to fetch again
		h, err := NewClientCredentials(ClientCredentialsConfig{OAuthConfig: c})
		return pick(h, SourceClientCredentialsEnv, err)
	case csecret != "":
		return nil, halfSet(prefix, EnvClientID, EnvClientSecret, false)
	}
	skip(SourceClientCredentialsEnv, fmt.Sprintf("%s%s and %s%s are not set", prefix, EnvClientID, prefix, EnvClientSecret))

	workloadID := cid
	if workloadID == "" {
		workloadID = cfg.Workload.ClientID
	}
	workload := func(src interface {
		JWTSource
		AssertionSource
	}, s Source) (*Selected, error) {
		c := cfg.OAuth
		c.Store = nil // cheap to exchange again
		c.ClientSecret = auth.Secret{}
		if cfg.Workload.Exchange == WorkloadTokenExchange {
			if workloadID != "" {
				c.ClientID = workloadID
			}
			h, err := NewTokenExchange(TokenExchangeConfig{OAuthConfig: c, SubjectToken: src})
			return pick(h, s, err)
		}
		if workloadID == "" {
			return nil, auth.ConfigError("handlers: %s: the client it authenticates as is not set: set %s%s or Workload.ClientID", s, prefix, EnvClientID)
		}
		c.ClientID, c.ClientAssertion = workloadID, src
		h, err := NewClientCredentials(ClientCredentialsConfig{OAuthConfig: c})
		return pick(h, s, err)
	}
	if path := env(EnvFederatedTokenFile); path != "" {
		return workload(FederatedTokenFile{Path: path}, SourceFederatedTokenFile)
	}
	skip(SourceFederatedTokenFile, prefix+EnvFederatedTokenFile+" is not set")
	switch ghURL, ghToken := strings.TrimSpace(getenv(EnvGitHubTokenURL)), strings.TrimSpace(getenv(EnvGitHubTokenToken)); {
	case ghURL == "" || ghToken == "":
		skip(SourceGitHubActions, EnvGitHubTokenURL+" and "+EnvGitHubTokenToken+" are not set")
	case cfg.Workload.GitHubAudience == "":
		skip(SourceGitHubActions, "no audience configured (Workload.GitHubAudience)")
	default:
		return workload(GitHubActionsToken{Audience: cfg.Workload.GitHubAudience, Getenv: getenv, HTTPClient: cfg.OAuth.HTTPClient}, SourceGitHubActions)
	}
	if command := strings.Fields(env(EnvFederatedTokenCommand)); len(command) > 0 {
		return workload(CommandToken{Command: command, Timeout: cfg.Workload.CommandTimeout}, SourceTokenCommand)
	}
	skip(SourceTokenCommand, prefix+EnvFederatedTokenCommand+" is not set")
	if cid != "" {
		return nil, auth.ConfigError("handlers: %s%s is set, but neither %s%s nor a workload token (%s%s, GitHub Actions, %s%s): set one",
			prefix, EnvClientID, prefix, EnvClientSecret, prefix, EnvFederatedTokenFile, prefix, EnvFederatedTokenCommand)
	}

	if cfg.OAuth.ClientID == "" {
		skip(SourceStoredLogin, "no OAuth client configured (OAuth.ClientID)")
		skip(SourceInteractive, "no OAuth client configured (OAuth.ClientID)")
		return nil, noCredentials(skipped)
	}
	person, err := cfg.personLogin()
	if err != nil {
		return nil, fmt.Errorf("handlers: %s: %w", SourceInteractive, err)
	}
	if cfg.OAuth.Store == nil {
		skip(SourceStoredLogin, "no token store configured (OAuth.Store)")
	} else if _, err := person.Token(ctx); err == nil {
		return &Selected{AuthenticationHandler: person, Source: SourceStoredLogin}, nil
	} else if !errors.Is(err, auth.ErrLoginRequired) {
		person.Close()
		return nil, fmt.Errorf("handlers: %s: %w", SourceStoredLogin, err)
	} else {
		skip(SourceStoredLogin, "none stored, or its refresh token was refused")
	}
	if cfg.Interactive == InteractiveNone {
		person.Close()
		skip(SourceInteractive, "not enabled (Interactive)")
		return nil, noCredentials(skipped)
	}
	return &Selected{AuthenticationHandler: person, Source: SourceInteractive}, nil
}

// personLogin builds the handler of the stored and interactive logins.
func (cfg *SelectConfig) personLogin() (interface {
	auth.AuthenticationHandler
	auth.TokenReader
	io.Closer
}, error) {
	if cfg.Interactive == InteractiveBrowser {
		return NewBrowserLogin(BrowserLoginConfig{OAuthConfig: cfg.OAuth, Output: cfg.Output, DeviceFallback: true})
	}
	return NewDeviceCode(DeviceCodeConfig{OAuthConfig: cfg.OAuth, Prompt: cfg.Prompt})
}

// halfSet is the error of a pair of variables of which only one is set
// (the first when firstSet).
func halfSet(prefix, first, second string, firstSet bool) error {
	set := second
	if firstSet {
		set = first
	}
	return auth.ConfigError("handlers: %s%s and %s%s must be set together; only %s%s is", prefix, first, prefix, second, prefix, set)
}

func noCredentials(skipped []string) error {
	return fmt.Errorf("%w; tried, in order:\n  %s", ErrNoCredentials, strings.Join(skipped, "\n  "))
}
