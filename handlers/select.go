package handlers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

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
	// Interactive is the login of last resort; the zero value is none.
	Interactive Interactive
	// Prompt shows a device code (see [DeviceCodeConfig.Prompt]).
	Prompt func(ctx context.Context, p DevicePrompt) error
	// Output receives what the interactive logins print; nil means os.Stderr.
	Output io.Writer
}

// Selected is the handler [Select] chose, and where its credentials come
// from.
type Selected struct {
	auth.AuthenticationHandler
	// Source is where the credentials come from.
	Source Source
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
//  5. a login stored in cfg.OAuth.Store for cfg.OAuth's client (read now,
//     refreshed if needed, without prompting);
//  6. an interactive login (cfg.Interactive), which runs at Authenticate.
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
	case cid != "" || csecret != "":
		return nil, halfSet(prefix, EnvClientID, EnvClientSecret, cid != "")
	}
	skip(SourceClientCredentialsEnv, fmt.Sprintf("%s%s and %s%s are not set", prefix, EnvClientID, prefix, EnvClientSecret))

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
