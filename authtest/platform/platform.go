// Package platform is a fake of the platform authkit's SDKs talk to, for
// tests and examples, in the spirit of net/http/httptest: [New] starts the
// three services on free loopback ports — a hub and an access manager
// (small JSON APIs over HTTP) and a message service over gRPC (the standard
// health service and authtest.platform.v1.Messages/WhoAmI, see [WhoAmI]).
// Each checks credentials as a real platform would, with grpcauth's
// validators: a bearer JWT verified against the provider's JWKS (issuer,
// audience, expiry), or an API key it knows. Refusals are 401 with an RFC
// 6750 WWW-Authenticate header or codes.Unauthenticated; [Platform.Counts]
// tells how many calls each service authenticated and refused. Tokens come
// from an [authtest.Provider] (Config.Provider).
package platform

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/authtest"
	"github.com/authkit-go/authkit/grpcauth"
)

// DefaultAudience is the "aud" a [Platform] requires of bearer JWTs
// when Config.Audience is empty. Give the provider the same value
// (authtest.ProviderConfig.Audience) so that its tokens are meant for the
// platform.
const DefaultAudience = "authkit-platform"

// Service names one service of a [Platform].
type Service string

// The services of a [Platform].
const (
	// ServiceHub is the hub's HTTP API.
	ServiceHub Service = "hub"
	// ServiceAccessManager is the access manager's HTTP API.
	ServiceAccessManager Service = "access manager"
	// ServiceMessages is the message service over gRPC.
	ServiceMessages Service = "message service"
)

// Services lists the services of a [Platform] in a fixed order.
var Services = []Service{ServiceHub, ServiceAccessManager, ServiceMessages}

// APIKey is an API key a [Platform] knows.
type APIKey struct {
	// ID is the key id, sent as "x-api-key-id" by default.
	ID string
	// Secret is the key, sent as "x-api-key" by default; compared in
	// constant time.
	Secret string
	// Username is the key owner's user name, reported by the services.
	Username string
	// Permissions are what the access manager reports for the key.
	Permissions []string
}

// Config configures a [Platform]. Every zero value is usable; a
// platform without Provider (or Issuer and JWKSURL) and without APIKeys
// accepts nobody.
type Config struct {
	// Provider, if set, is the issuer of the bearer JWTs the services
	// accept: Issuer, JWKSURL, HTTPClient and Clock default to its own.
	Provider *authtest.Provider
	// Issuer is the required "iss" of bearer JWTs (a provider that is not
	// an authtest.Provider).
	Issuer string
	// JWKSURL is where the issuer's keys are fetched from.
	JWKSURL string
	// HTTPClient fetches the JWK Set; nil means the provider's client.
	HTTPClient *http.Client
	// Audience is the required "aud" of bearer JWTs; empty means
	// DefaultAudience.
	Audience string
	// Leeway is the clock skew allowed on "exp" and "nbf": zero means none,
	// so a token is refused the moment it expires, as strict tests want.
	Leeway time.Duration
	// APIKeys are the API keys the services accept. More can be added with
	// [Platform.AddAPIKey].
	APIKeys []APIKey
	// Wire names the headers and metadata entries the services read; the
	// zero value is the standard (Authorization: Bearer, x-api-key-id,
	// x-api-key). The hub reads Wire.Hub, the access manager
	// Wire.AccessManager, the message service Wire.MessageService.
	Wire auth.Wire
	// TLS serves the three services over TLS with httptest's certificate
	// (valid for 127.0.0.1); trust it with [Platform.Client] and
	// [Platform.MessageServiceTLS].
	TLS bool
	// Clock checks token expiries; nil means the provider's clock, or the
	// system clock without a provider.
	Clock auth.Clock
	// Logger receives a debug record for each refused call, with the
	// reason (never a credential); nil means silent.
	Logger *slog.Logger
	// RequireDPoP makes the services accept DPoP-bound tokens only
	// (grpcauth.JWTConfig.RequireDPoP). Without it, a DPoP-bound token is
	// accepted with a valid proof and a bearer token as it is.
	RequireDPoP bool
	// DPoPNonce makes the hub and the access manager require their nonce
	// in DPoP proofs (https://www.rfc-editor.org/rfc/rfc9449#section-9): a
	// request whose proof lacks it is answered 401 with
	// WWW-Authenticate: DPoP error="use_dpop_nonce" and the nonce in a
	// DPoP-Nonce header. See [Platform.RotateDPoPNonce].
	DPoPNonce bool
}

// ServiceCounts counts the calls one service received.
type ServiceCounts struct {
	// Authenticated counts the calls whose credentials were accepted.
	Authenticated int
	// Rejected counts the calls refused as unauthenticated (401 or
	// codes.Unauthenticated), injected rejections included.
	Rejected int
	// Failed counts the calls failed by [Platform.FailNext].
	Failed int
}

// Counts are the counters of every service of a [Platform].
type Counts map[Service]ServiceCounts

// Platform is a fake of the platform authkit serves: a hub HTTP API, an
// access manager HTTP API and a message service over gRPC, each started on
// a free loopback port and each checking credentials with grpcauth's
// validators — a bearer JWT from the provider, checked against its JWKS,
// or an API key the platform knows — as the real services would.
//
// The hub serves GET /api/me and GET /api/projects; the access manager
// GET /api/me and GET /api/permissions; the message service the standard
// gRPC health service (grpc.health.v1.Health, authenticated like every
// other method) and [MessagesServiceName] (see [WhoAmI]). A refused HTTP
// call answers 401 with a WWW-Authenticate header
// (https://www.rfc-editor.org/rfc/rfc6750#section-3); a refused RPC ends
// with codes.Unauthenticated.
//
// All its methods are safe for concurrent use.
type Platform struct {
	cfg      Config
	hub, am  *httptest.Server
	grpcSrv  *grpc.Server
	grpcLis  net.Listener
	grpcDone chan struct{}
	jwts     []*grpcauth.JWTValidator
	once     sync.Once

	mu     sync.Mutex // guards everything below
	keys   map[string]APIKey
	counts Counts
	reject map[Service]int
	fail   map[Service]int
	nonce  string // the DPoP nonce of the HTTP services, with DPoPNonce
	// nonceAsked counts the requests answered use_dpop_nonce.
	nonceAsked int
}

// dpopNonce is the nonce the HTTP services require in DPoP proofs.
func (pl *Platform) dpopNonce() string {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if pl.nonce == "" {
		pl.nonce = rand.Text()
	}
	return pl.nonce
}

// RotateDPoPNonce makes the HTTP services require a new DPoP nonce (see
// Config.DPoPNonce).
func (pl *Platform) RotateDPoPNonce() {
	pl.mu.Lock()
	pl.nonce = rand.Text()
	pl.mu.Unlock()
}

// DPoPNonceChallenges counts the requests the HTTP services answered
// use_dpop_nonce.
func (pl *Platform) DPoPNonceChallenges() int {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return pl.nonceAsked
}

// New starts the three services. It fails if cfg is inconsistent
// or a port cannot be opened. Stop it with Close.
func New(cfg Config) (*Platform, error) {
	if err := cfg.Wire.Validate(); err != nil {
		return nil, err
	}
	if p := cfg.Provider; p != nil {
		if cfg.Issuer == "" {
			cfg.Issuer = p.Issuer()
		}
		if cfg.JWKSURL == "" {
			cfg.JWKSURL = p.JWKSURL()
		}
		if cfg.HTTPClient == nil {
			cfg.HTTPClient = p.Client()
		}
		if cfg.Clock == nil {
			cfg.Clock = p.Clock()
		}
	}
	if (cfg.Issuer == "") != (cfg.JWKSURL == "") {
		return nil, auth.ConfigError("platform: Config needs both Issuer and JWKSURL, or neither")
	}
	if cfg.Clock == nil {
		cfg.Clock = auth.SystemClock()
	}
	if cfg.Audience == "" {
		cfg.Audience = DefaultAudience
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	pl := &Platform{
		cfg:      cfg,
		grpcDone: make(chan struct{}),
		keys:     make(map[string]APIKey),
		counts:   Counts{},
		reject:   make(map[Service]int),
		fail:     make(map[Service]int),
	}
	for _, k := range cfg.APIKeys {
		if err := pl.AddAPIKey(k); err != nil {
			return nil, err
		}
	}
	w := cfg.Wire.WithDefaults()
	hubV, err := pl.validator(w.Hub)
	if err != nil {
		pl.closeValidators()
		return nil, err
	}
	amV, err := pl.validator(w.AccessManager)
	if err != nil {
		pl.closeValidators()
		return nil, err
	}
	msV, err := pl.validator(w.MessageService)
	if err != nil {
		pl.closeValidators()
		return nil, err
	}

	pl.hub = pl.startHTTP(pl.hubHandler(pl.guard(ServiceHub, hubV)))
	pl.am = pl.startHTTP(pl.accessManagerHandler(pl.guard(ServiceAccessManager, amV)))
	if err := pl.startGRPC(pl.guard(ServiceMessages, msV)); err != nil {
		pl.hub.Close()
		pl.am.Close()
		pl.closeValidators()
		return nil, err
	}
	return pl, nil
}

// AddAPIKey makes the services accept k, replacing a key of the same id.
func (pl *Platform) AddAPIKey(k APIKey) error {
	if k.ID == "" || k.Secret == "" {
		return auth.ConfigError("platform: an APIKey needs an ID and a Secret")
	}
	pl.mu.Lock()
	defer pl.mu.Unlock()
	pl.keys[k.ID] = k
	return nil
}

// RemoveAPIKey makes the services refuse the key with the given id.
func (pl *Platform) RemoveAPIKey(id string) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	delete(pl.keys, id)
}

// validator is what a service checks: a bearer JWT in the entry f names
// (if the platform has an issuer), else an API key.
func (pl *Platform) validator(f auth.Field) (grpcauth.Validator, error) {
	w := pl.cfg.Wire.WithDefaults()
	apiKeys, err := grpcauth.NewAPIKeyValidator(grpcauth.APIKeyConfig{
		Lookup: pl.lookupKey,
		Wire:   auth.Wire{APIKeyIDName: strings.ToLower(w.APIKeyIDName), APIKeyName: strings.ToLower(w.APIKeyName)},
	})
	if err != nil {
		return nil, err
	}
	if pl.cfg.Issuer == "" {
		return apiKeys, nil
	}
	leeway := pl.cfg.Leeway
	if leeway == 0 {
		leeway = -1 // grpcauth: negative means none
	}
	jv, err := grpcauth.NewJWTValidator(grpcauth.JWTConfig{
		Issuer:      pl.cfg.Issuer,
		Audience:    pl.cfg.Audience,
		JWKSURL:     pl.cfg.JWKSURL,
		HTTPClient:  pl.cfg.HTTPClient,
		Leeway:      leeway,
		Clock:       pl.cfg.Clock,
		Wire:        auth.Wire{MessageService: auth.Field{Name: strings.ToLower(f.Name), Prefix: f.Prefix}},
		Logger:      pl.cfg.Logger,
		RequireDPoP: pl.cfg.RequireDPoP,
	})
	if err != nil {
		return nil, err
	}
	pl.jwts = append(pl.jwts, jv)
	var bearer grpcauth.Validator = jv
	if prov := pl.cfg.Provider; prov != nil {
		// A resource server of this provider also learns of revocations,
		// as one that introspects does.
		name := strings.ToLower(f.Name)
		bearer = grpcauth.ValidatorFunc(func(ctx context.Context, md metadata.MD) (*grpcauth.Identity, error) {
			id, err := jv.Validate(ctx, md)
			if err != nil || id == nil {
				return id, err
			}
			for _, v := range md.Get(name) {
				tok := strings.TrimPrefix(v, f.Prefix)
				if p := auth.DPoPScheme + " "; len(v) > len(p) && strings.EqualFold(v[:len(p)], p) {
					tok = v[len(p):]
				}
				if prov.AccessTokenRevoked(strings.TrimSpace(tok)) {
					return nil, &grpcauth.Error{Kind: grpcauth.ErrInvalidCredentials,
						Message: "grpcauth: invalid credentials", Detail: errors.New("platform: the access token was revoked")}
				}
			}
			return id, nil
		})
	}
	return grpcauth.ValidatorList{bearer, apiKeys}, nil
}

func (pl *Platform) lookupKey(_ context.Context, id string) (*grpcauth.APIKey, error) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	k, ok := pl.keys[id]
	if !ok {
		return nil, nil
	}
	return &grpcauth.APIKey{Secret: auth.NewSecret(k.Secret), Subject: k.ID, Username: k.Username}, nil
}

// errFailed is the injected failure of [Platform.FailNext].
var errFailed = status.Error(codes.Unavailable, "platform: injected failure; retry")

// guard wraps a service's validator: it applies the injected faults and
// counts the outcome.
func (pl *Platform) guard(s Service, v grpcauth.Validator) grpcauth.Validator {
	return grpcauth.ValidatorFunc(func(ctx context.Context, md metadata.MD) (*grpcauth.Identity, error) {
		pl.mu.Lock()
		c := pl.counts[s]
		switch {
		case pl.fail[s] > 0:
			pl.fail[s]--
			c.Failed++
			pl.counts[s] = c
			pl.mu.Unlock()
			return nil, errFailed
		case pl.reject[s] > 0:
			pl.reject[s]--
			c.Rejected++
			pl.counts[s] = c
			pl.mu.Unlock()
			return nil, &grpcauth.Error{Kind: grpcauth.ErrInvalidCredentials,
				Message: "grpcauth: invalid credentials", Detail: errors.New("platform: injected rejection")}
		}
		pl.mu.Unlock()
		id, err := v.Validate(ctx, md)
		if err != nil {
			pl.cfg.Logger.LogAttrs(ctx, slog.LevelDebug, "platform: call refused",
				slog.String("service", string(s)), slog.String("reason", err.Error()))
		}
		pl.mu.Lock()
		c = pl.counts[s]
		if err == nil {
			c.Authenticated++
		} else {
			c.Rejected++
		}
		pl.counts[s] = c
		pl.mu.Unlock()
		return id, err
	})
}

// RejectNext makes service s refuse the next n calls as unauthenticated,
// whatever their credentials (a revoked session, a rotated key...): HTTP
// 401, or codes.Unauthenticated. The rejections are counted as such.
func (pl *Platform) RejectNext(s Service, n int) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	pl.reject[s] += n
}

// FailNext makes service s fail the next n calls before checking their
// credentials: HTTP 503 with "Retry-After: 0", or codes.Unavailable.
func (pl *Platform) FailNext(s Service, n int) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	pl.fail[s] += n
}

// Counts returns a copy of the counters of every service.
func (pl *Platform) Counts() Counts {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	out := make(Counts, len(Services))
	for _, s := range Services {
		out[s] = pl.counts[s]
	}
	return out
}

// ResetCounts sets every counter to zero.
func (pl *Platform) ResetCounts() {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	pl.counts = Counts{}
}

// HubURL is the hub's base URL, e.g. "http://127.0.0.1:41234".
func (pl *Platform) HubURL() string { return pl.hub.URL }

// AccessManagerURL is the access manager's base URL.
func (pl *Platform) AccessManagerURL() string { return pl.am.URL }

// MessageServiceAddr is the message service's address, "127.0.0.1:port",
// a target for grpc.NewClient.
func (pl *Platform) MessageServiceAddr() string { return pl.grpcLis.Addr().String() }

// Client returns an HTTP client for the hub and the access manager; with
// TLS it trusts their certificate.
func (pl *Platform) Client() *http.Client { return pl.hub.Client() }

// MessageServiceTLS returns transport credentials that trust the message
// service's certificate; nil without Config.TLS.
func (pl *Platform) MessageServiceTLS() credentials.TransportCredentials {
	if !pl.cfg.TLS {
		return nil
	}
	roots := x509.NewCertPool()
	roots.AddCert(pl.hub.Certificate())
	return credentials.NewTLS(&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12})
}

// Close stops the services, ending calls in flight after a short grace
// period, and the validators' background key refreshes. It is safe to call
// more than once.
func (pl *Platform) Close() {
	pl.once.Do(func() {
		stopped := make(chan struct{})
		go func() {
			pl.grpcSrv.GracefulStop()
			close(stopped)
		}()
		select {
		case <-stopped:
		case <-time.After(2 * time.Second):
			pl.grpcSrv.Stop()
			<-stopped
		}
		<-pl.grpcDone
		pl.hub.Close()
		pl.am.Close()
		pl.closeValidators()
	})
}

func (pl *Platform) closeValidators() {
	for _, v := range pl.jwts {
		v.Close()
	}
}

func (pl *Platform) startHTTP(h http.Handler) *httptest.Server {
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	if pl.cfg.TLS {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	return srv
}

func (pl *Platform) startGRPC(v grpcauth.Validator) error {
	ic, err := grpcauth.NewServerInterceptors(grpcauth.ServerConfig{Validator: v, Logger: pl.cfg.Logger})
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("platform: message service: %w", err)
	}
	opts := ic.ServerOptions()
	if pl.cfg.TLS {
		opts = append(opts, grpc.Creds(credentials.NewTLS(&tls.Config{
			Certificates: pl.hub.TLS.Certificates,
			MinVersion:   tls.VersionTLS12,
		})))
	}
	pl.grpcSrv = grpc.NewServer(opts...)
	pl.grpcLis = lis
	registerMessageService(pl.grpcSrv)
	go func() {
		defer close(pl.grpcDone)
		_ = pl.grpcSrv.Serve(lis)
	}()
	return nil
}
