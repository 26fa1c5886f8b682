// Command quickstart runs the whole platform in one process and
// authenticates to it with every authkit handler.
//
// It starts an OAuth 2.0 / OpenID Connect provider and a platform — a hub
// HTTP API, an access manager HTTP API and a gRPC message service — from
// the authtest package, on loopback ports. Then, for each handler (API
// keys, an externally managed JWT, device code, browser login, client
// credentials, password with TOTP, refresh token) it builds a session and a gRPC channel,
// calls the three services, lets the short-lived access token (3 seconds)
// expire, calls them again with the token the handler renewed on its own,
// and prints a table. Nothing to install or configure:
//
//	go run ./examples/quickstart        # the table
//	go run ./examples/quickstart -v     # and every request, secrets masked
//
// It exits 0 when every handler reached every service, 1 otherwise.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/authtest"
	"github.com/authkit-go/authkit/authtest/platform"
	"github.com/authkit-go/authkit/examples/internal/demo"
	"github.com/authkit-go/authkit/grpcauth"
	"github.com/authkit-go/authkit/handlers"
	"github.com/authkit-go/authkit/session"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart: FAILED:", err)
		os.Exit(1)
	}
}

// Settings of the embedded world. The secrets are demo values: a real
// program reads them from its environment or a secret store.
const (
	tokenLifetime = 3 * time.Second // short, to show renewals within seconds (1 s before expiry, by default)
	approveAfter  = time.Second     // the simulated user approves the device code
	publicClient  = "quickstart-cli"
	serviceClient = "quickstart-service"
	serviceSecret = "svc_secret_6a1f0c93e2b84d57"
	apiKeyID      = "key-7f3a"
	apiKeySecret  = "ak_live_2b9c41f0d6e84a7b93c5e1f2a8d07b64"
	totpSecret    = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
	linusPassword = "correct horse battery staple"
	hedyPassword  = "frequency-hopping-1942"
)

// world is the embedded provider and platform, and what the flows share.
type world struct {
	prov     *authtest.Provider
	plat     *platform.Platform
	out      *demo.Out
	verbose  bool
	expired  atomic.Int64   // expired tokens sent to the hub on purpose
	logger   *slog.Logger   // the sessions' logger (retries, re-authentication); nil unless verbose
	browsers sync.WaitGroup // the simulated browsers, which outlive their logins
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("quickstart", flag.ContinueOnError)
	fs.SetOutput(stdout)
	verbose := fs.Bool("v", false, "print every request to the platform and the provider, secrets masked")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	start := time.Now()
	out := demo.NewOut(stdout)

	prov := authtest.NewProvider(authtest.ProviderConfig{
		Audience:                platform.DefaultAudience,
		AccessTokenLifetime:     tokenLifetime,
		DeviceInterval:          time.Second,
		AlwaysIssueRefreshToken: true,
		Clients: []authtest.Client{
			{ID: publicClient}, // device code, password, refresh token
			{ID: serviceClient, Secret: serviceSecret, Grants: []string{authtest.GrantClientCredentials}},
		},
		Users: []authtest.User{
			{Username: "ada", Password: "unused"},
			{Username: "linus", Password: linusPassword, TOTPSecret: totpSecret},
			{Username: "hedy", Password: hedyPassword},
			{Username: "margaret", Password: "unused"},
		},
	})
	defer prov.Close()
	plat, err := platform.New(platform.Config{
		Provider: prov, // accept its JWTs, checked against its JWKS
		APIKeys:  []platform.APIKey{{ID: apiKeyID, Secret: apiKeySecret, Username: "ci-bot"}},
	})
	if err != nil {
		return fmt.Errorf("starting the platform: %w", err)
	}
	defer plat.Close()
	out.Printf("provider        %s\nhub             %s\naccess manager  %s\nmessage service %s (gRPC)\n\n",
		prov.Issuer(), plat.HubURL(), plat.AccessManagerURL(), plat.MessageServiceAddr())

	w := &world{prov: prov, plat: plat, out: out, verbose: *verbose}
	if *verbose {
		w.logger = slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	flows := w.flows()
	out.Printf("Authenticating with %d handlers at once; each access token lives %s, so this takes a few seconds.\n\n",
		len(flows), tokenLifetime)

	rows := make([]row, len(flows))
	var wg sync.WaitGroup
	for i, f := range flows {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rows[i] = w.runFlow(ctx, f)
		}()
	}
	wg.Wait()
	w.browsers.Wait()

	out.Printf("\n")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "handler\tuser\thub\taccess manager\tmessage service\ttoken fetches\trefreshes")
	fmt.Fprintln(tw, "-------\t----\t---\t--------------\t---------------\t-------------\t---------")
	var failed []string
	refreshes := int64(0)
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.name, orDash(r.user),
			r.hub, r.am, r.ms, count(r.fetches), count(r.refreshes))
		if r.err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", r.name, r.err))
		}
		refreshes += max(r.refreshes, 0)
	}
	tw.Flush()
	out.Printf("\n")
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d handlers failed:\n  %s", len(failed), len(rows), strings.Join(failed, "\n  "))
	}
	if refreshes == 0 {
		return errors.New("no token was refreshed")
	}
	c := plat.Counts()
	var ok, refused int
	for _, s := range platform.Services {
		ok, refused = ok+c[s].Authenticated, refused+c[s].Rejected
	}
	onPurpose := fmt.Sprintf("the %d expired tokens sent on purpose", w.expired.Load())
	if int64(refused) != w.expired.Load() {
		onPurpose = fmt.Sprintf("%d of them the expired tokens sent on purpose; the sessions re-authenticated after the others", w.expired.Load())
	}
	out.Printf("Every handler reached all three services; every expired token was refused by the hub, and had already been replaced.\n")
	out.Printf("Platform: %d calls authenticated, %d refused (%s). Done in %.1fs.\n",
		ok, refused, onPurpose, time.Since(start).Seconds())
	return nil
}

// flow is one handler's run.
type flow struct {
	name string
	// handler builds the handler; fetches counts the tokens it obtained.
	handler func() (auth.AuthenticationHandler, *atomic.Int64, error)
}

// row is one line of the table.
type row struct {
	name, user  string
	hub, am, ms *tally
	fetches     int64 // -1: not applicable
	refreshes   int64 // -1: not applicable
	err         error
}

// tally counts one service's successful calls.
type tally struct{ ok, total int }

func (t *tally) String() string {
	if t.total == 0 {
		return "-"
	}
	if t.ok == t.total {
		return fmt.Sprintf("ok %d/%d", t.ok, t.total)
	}
	return fmt.Sprintf("FAIL %d/%d", t.ok, t.total)
}

func count(n int64) string {
	if n < 0 {
		return "-"
	}
	return fmt.Sprint(n)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oauth returns the configuration shared by the OAuth handlers: the
// provider's endpoints and a client that counts the tokens obtained.
func (w *world) oauth(tag, clientID, secret string) (handlers.OAuthConfig, *atomic.Int64) {
	n := new(atomic.Int64)
	return handlers.OAuthConfig{
		Endpoints: handlers.Endpoints{
			Issuer:                 w.prov.Issuer(),
			TokenURL:               w.prov.TokenURL(),
			DeviceAuthorizationURL: w.prov.DeviceAuthorizationURL(),
			AuthorizationURL:       w.prov.AuthorizationURL(),
			JWKSURL:                w.prov.JWKSURL(),
		},
		ClientID:     clientID,
		ClientSecret: auth.NewSecret(secret),
		HTTPClient:   &http.Client{Transport: &tokenCounter{n: n, out: w.out, tag: tag, verbose: w.verbose}},
	}, n
}

// flows lists the handlers, each built as its users would build it.
func (w *world) flows() []flow {
	return []flow{
		{"API keys", func() (auth.AuthenticationHandler, *atomic.Int64, error) {
			h, err := handlers.NewAPIKeys(handlers.APIKeysConfig{KeyID: apiKeyID, Key: auth.NewSecret(apiKeySecret), Username: "ci-bot"})
			return h, nil, err
		}},
		{"externally managed JWT", func() (auth.AuthenticationHandler, *atomic.Int64, error) {
			n := new(atomic.Int64)
			h, err := handlers.NewExternallyManagedJWT(handlers.ExternallyManagedJWTConfig{
				// The embedding application owns the login; here it asks
				// the provider for a token for its user, grace.
				Callback: func(ctx context.Context) (string, time.Time, error) {
					n.Add(1)
					return w.prov.IssueAccessToken("grace", "embedding-app", nil, tokenLifetime), time.Time{}, ctx.Err()
				},
				UsernameClaim: "preferred_username",
			})
			return h, n, err
		}},
		{"device code", func() (auth.AuthenticationHandler, *atomic.Int64, error) {
			cfg, n := w.oauth("[device code]", publicClient, "")
			w.prov.OnDeviceAuthorization(func(code string) {
				time.AfterFunc(approveAfter, func() {
					if err := w.prov.ApproveDevice(code, "ada"); err == nil {
						w.out.Printf("[provider]    ada approved code %s in her browser (simulated, %s after it was shown)\n", code, approveAfter)
					}
				})
			})
			h, err := handlers.NewDeviceCode(handlers.DeviceCodeConfig{
				OAuthConfig: cfg,
				Prompt: func(ctx context.Context, p handlers.DevicePrompt) error {
					// The default prompt, exactly as a user sees it on a terminal.
					var b bytes.Buffer
					if err := handlers.DefaultPrompt(&b, nil)(ctx, p); err != nil {
						return err
					}
					for _, line := range strings.Split(strings.TrimRight(b.String(), "\n"), "\n") {
						w.out.Printf("[device code] %s\n", line)
					}
					return nil
				},
			})
			return h, n, err
		}},
		{"browser login", func() (auth.AuthenticationHandler, *atomic.Int64, error) {
			cfg, n := w.oauth("[browser login]", publicClient, "")
			// hedy's browser: authtest's Browser loads the authorization
			// URL, fills the provider's login form as she would, and
			// follows the redirect to the handler's loopback server.
			browser := w.prov.NewBrowser("hedy", hedyPassword)
			h, err := handlers.NewBrowserLogin(handlers.BrowserLoginConfig{
				OAuthConfig: cfg,
				OpenBrowser: func(ctx context.Context, authURL string) error {
					// A real opener returns at once, and the browser lives on
					// after the login ends (with its landing page).
					bctx := context.WithoutCancel(ctx)
					w.browsers.Add(1)
					go func() {
						defer w.browsers.Done()
						if err := browser.Open(bctx, authURL); err != nil {
							w.out.Printf("[browser login] the browser: %v\n", err)
							return
						}
						w.out.Printf("[browser login] hedy logged in in her browser (simulated); it shows %q\n", browser.LastPage().Text())
					}()
					return nil
				},
				Output: linePrefixer{w.out, "[browser login]"}, // what a person sees on the terminal
			})
			return h, n, err
		}},
		{"client credentials", func() (auth.AuthenticationHandler, *atomic.Int64, error) {
			cfg, n := w.oauth("[client credentials]", serviceClient, serviceSecret)
			h, err := handlers.NewClientCredentials(handlers.ClientCredentialsConfig{OAuthConfig: cfg})
			return h, n, err
		}},
		{"password + TOTP", func() (auth.AuthenticationHandler, *atomic.Int64, error) {
			cfg, n := w.oauth("[password + TOTP]", publicClient, "")
			h, err := handlers.NewPassword(handlers.PasswordConfig{
				OAuthConfig: cfg,
				Username:    "linus",
				Password:    auth.NewSecret(linusPassword),
				TOTPSecret:  auth.NewSecret(totpSecret), // a code is computed at each login
			})
			return h, n, err
		}},
		{"refresh token", func() (auth.AuthenticationHandler, *atomic.Int64, error) {
			cfg, n := w.oauth("[refresh token]", publicClient, "")
			// A refresh token margaret obtained earlier, e.g. in another program.
			rt := w.prov.IssueRefreshToken("margaret", publicClient, []string{"openid", "profile"})
			h, err := handlers.NewRefreshToken(handlers.RefreshTokenConfig{OAuthConfig: cfg, RefreshToken: auth.NewSecret(rt)})
			return h, n, err
		}},
	}
}

// linePrefixer writes each non-blank line it gets to out after tag.
type linePrefixer struct {
	out *demo.Out
	tag string
}

func (p linePrefixer) Write(b []byte) (int, error) {
	var lines strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			fmt.Fprintf(&lines, "%s %s\n", p.tag, line)
		}
	}
	p.out.Printf("%s", lines.String()) // one piece: not interleaved with other flows
	return len(b), nil
}

// engineHandler is a handler with a token lifecycle (every one but API keys).
type engineHandler interface {
	Token(ctx context.Context) (*auth.Token, error)
	Stats() auth.Stats
}

// runFlow authenticates with one handler, calls every service, lets the
// token expire, and calls every service again.
func (w *world) runFlow(ctx context.Context, f flow) (r row) {
	r = row{name: f.name, hub: &tally{}, am: &tally{}, ms: &tally{}, fetches: -1, refreshes: -1}
	fail := func(err error) row {
		if r.err == nil {
			r.err = err
		}
		return r
	}
	h, fetches, err := f.handler()
	if err != nil {
		return fail(err)
	}
	if c, ok := h.(io.Closer); ok {
		defer c.Close()
	}
	defer func() {
		if fetches != nil {
			r.fetches = fetches.Load()
		}
		if e, ok := h.(engineHandler); ok {
			r.refreshes = e.Stats().Refreshes
		}
	}()
	tag := "[" + f.name + "]"
	if err := h.Authenticate(ctx); err != nil {
		return fail(fmt.Errorf("authenticate: %w", err))
	}
	if w.verbose {
		w.out.Printf("%s authenticated as %s\n", tag, orDash(h.Username()))
	}

	cfg := session.Config{HubURL: w.plat.HubURL(), AccessManagerURL: w.plat.AccessManagerURL(), Logger: w.logger}
	if w.verbose {
		cfg.Transport = &demo.Transport{Out: w.out, Tag: tag}
	}
	s, err := session.New(h, cfg)
	if err != nil {
		return fail(err)
	}
	defer s.Close()
	opts, err := grpcauth.DialOptions(h, grpcauth.ClientConfig{
		AllowInsecureLoopback: true, // the platform listens on loopback without TLS
		TransportCredentials:  insecure.NewCredentials(),
	})
	if err != nil {
		return fail(err)
	}
	if w.verbose {
		opts = append(opts, grpc.WithChainUnaryInterceptor(demo.UnaryInterceptor(w.out, tag, h.MessageServiceMetadata)))
	}
	conn, err := grpc.NewClient(w.plat.MessageServiceAddr(), opts...)
	if err != nil {
		return fail(err)
	}
	defer conn.Close()

	if err := w.round(ctx, &r, s.HTTPClient(), conn); err != nil {
		return fail(fmt.Errorf("first round: %w", err))
	}
	if e, ok := h.(engineHandler); ok {
		first, err := e.Token(ctx)
		if err != nil {
			return fail(fmt.Errorf("no current token after the first round: %w", err))
		}
		// Let the first token expire. The handler renews it in the
		// background before that, without being asked.
		if err := sleepUntil(ctx, first.Expiry.Add(300*time.Millisecond)); err != nil {
			return fail(fmt.Errorf("waiting for the token to expire: %w", err))
		}
		w.expired.Add(1)
		if err := w.refused(ctx, first.AccessToken.Reveal()); err != nil {
			return fail(err)
		}
		if w.verbose {
			w.out.Printf("%s the first token expired; the hub now refuses it\n", tag)
		}
	}
	if err := w.round(ctx, &r, s.HTTPClient(), conn); err != nil {
		return fail(fmt.Errorf("second round: %w", err))
	}
	return r
}

// round calls each service twice and checks that all three see one caller.
func (w *world) round(ctx context.Context, r *row, client *http.Client, conn *grpc.ClientConn) error {
	var errs []error
	subjects := map[string]bool{}
	call := func(t *tally, service string, fn func() (platform.Me, error)) {
		t.total++
		me, err := fn()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", service, err))
			return
		}
		t.ok++
		if me.Subject != "" {
			subjects[me.Subject] = true
			if r.user == "" {
				r.user = me.Username
			}
		}
	}
	getMe := func(url string) func() (platform.Me, error) {
		return func() (platform.Me, error) {
			var me platform.Me
			return me, demo.GetJSON(ctx, client, url+platform.PathMe, &me)
		}
	}
	call(r.hub, "hub", getMe(w.plat.HubURL()))
	call(r.hub, "hub", func() (platform.Me, error) {
		var p platform.Projects
		return platform.Me{}, demo.GetJSON(ctx, client, w.plat.HubURL()+platform.PathProjects, &p)
	})
	call(r.am, "access manager", getMe(w.plat.AccessManagerURL()))
	call(r.am, "access manager", func() (platform.Me, error) {
		var p platform.Permissions
		return platform.Me{}, demo.GetJSON(ctx, client, w.plat.AccessManagerURL()+platform.PathPermissions, &p)
	})
	call(r.ms, "message service", func() (platform.Me, error) { return platform.WhoAmI(ctx, conn) })
	call(r.ms, "message service", func() (platform.Me, error) {
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		if err == nil && resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			err = errors.New("health: " + resp.GetStatus().String())
		}
		return platform.Me{}, err
	})
	if len(subjects) > 1 {
		errs = append(errs, fmt.Errorf("the services saw different callers: %v", subjects))
	}
	return errors.Join(errs...)
}

// refused checks that the hub refuses an expired access token sent
// directly, without authkit.
func (w *world) refused(ctx context.Context, token string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.plat.HubURL()+platform.PathMe, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := w.plat.Client().Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		return fmt.Errorf("the hub answered %s to the expired token, want 401", resp.Status)
	}
	return nil
}

func sleepUntil(ctx context.Context, t time.Time) error {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// tokenCounter counts the tokens a handler obtains from the token endpoint
// (200 answers) and, with -v, prints each request to the provider. It never
// reads the bodies, which carry secrets.
type tokenCounter struct {
	n       *atomic.Int64
	out     *demo.Out
	tag     string
	verbose bool
}

// RoundTrip sends req with http.DefaultTransport.
func (c *tokenCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err == nil && req.URL.Path == authtest.EndpointToken && resp.StatusCode == http.StatusOK {
		c.n.Add(1)
	}
	if c.verbose {
		outcome := ""
		if err != nil {
			outcome = err.Error()
		} else {
			outcome = resp.Status
		}
		c.out.Printf("%s provider: %s %s -> %s\n", c.tag, req.Method, req.URL.Path, outcome)
	}
	return resp, err
}
