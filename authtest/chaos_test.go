package authtest_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/authtest"
	"github.com/authkit-go/authkit/authtest/platform"
	"github.com/authkit-go/authkit/grpcauth"
	"github.com/authkit-go/authkit/handlers"
	"github.com/authkit-go/authkit/session"
)

// TestChaos: 64 callers use the hub, the access manager and the message
// service through one handler, its session and its gRPC credentials, while
// the token endpoint fails 30 % of the requests (500, 502, 503) and delays
// every answer by up to 200 ms, and access tokens live 2 seconds. No caller
// request may fail: transient failures are retried within the callers'
// deadlines, tokens are refreshed before they expire, and a token the
// platform finds expired in transit is replaced and the call replayed.
//
// It runs for 10 s in the README's test command; .ci/run runs it for 60 s
// more (AUTHKIT_CHAOS_DURATION overrides it); loopback only.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for 10 s")
	}
	duration := 10 * time.Second
	if v := os.Getenv("AUTHKIT_CHAOS_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("AUTHKIT_CHAOS_DURATION: %v", err)
		}
		duration = d
	}
	const (
		callers  = 64
		lifetime = 2 * time.Second
		secret   = "chaos-secret-0123456789"
	)
	prov := authtest.NewProvider(authtest.ProviderConfig{
		Audience:            platform.DefaultAudience,
		AccessTokenLifetime: lifetime,
		Clients:             []authtest.Client{{ID: "svc", Secret: secret, Grants: []string{authtest.GrantClientCredentials}}},
	})
	defer prov.Close()
	plat, err := platform.New(platform.Config{Provider: prov})
	if err != nil {
		t.Fatal(err)
	}
	defer plat.Close()
	h, err := handlers.NewClientCredentials(handlers.ClientCredentialsConfig{OAuthConfig: handlers.OAuthConfig{
		Endpoints: handlers.Endpoints{TokenURL: prov.TokenURL()}, ClientID: "svc", ClientSecret: auth.NewSecret(secret),
		HTTPClient: prov.Client(),
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	s, err := session.New(h, session.Config{HubURL: plat.HubURL(), AccessManagerURL: plat.AccessManagerURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	opts, err := grpcauth.DialOptions(h, grpcauth.ClientConfig{AllowInsecureLoopback: true, TransportCredentials: insecure.NewCredentials()})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(plat.MessageServiceAddr(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	prov.SetChaos(authtest.EndpointToken, authtest.Chaos{FailureRate: 0.3, MaxLatency: 200 * time.Millisecond})
	client := s.HTTPClient()
	get := func(ctx context.Context, c interface {
		Do(*http.Request) (*http.Response, error)
	}, url string) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
	calls := []func(ctx context.Context) error{
		func(ctx context.Context) error { return get(ctx, s, plat.HubURL()+"/api/me") },
		func(ctx context.Context) error { return get(ctx, client, plat.AccessManagerURL()+"/api/me") },
		func(ctx context.Context) error { _, err := platform.WhoAmI(ctx, conn); return err },
	}

	var (
		requests, failures atomic.Int64
		mu                 sync.Mutex
		firstErrors        []string
		wg                 sync.WaitGroup
	)
	end := time.Now().Add(duration)
	for i := range callers {
		wg.Go(func() {
			for n := i; time.Now().Before(end); n++ {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := calls[n%len(calls)](ctx)
				cancel()
				requests.Add(1)
				if err != nil {
					failures.Add(1)
					mu.Lock()
					if len(firstErrors) < 5 {
						firstErrors = append(firstErrors, err.Error())
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	st, counts := h.Stats(), plat.Counts()
	rejected := 0
	for _, c := range counts {
		rejected += c.Rejected
	}
	t.Logf("%d callers for %s: %d requests, %d failed; token endpoint: %d requests, %d failed by chaos; engine: %d fetches, %d waits; platform: %d rejections absorbed by re-authentication",
		callers, duration, requests.Load(), failures.Load(),
		prov.Requests(authtest.EndpointToken), prov.ChaosFailures(), st.Fetches, st.Waits, rejected)
	if failures.Load() != 0 {
		t.Errorf("%d of %d caller requests failed, want 0; first errors: %q", failures.Load(), requests.Load(), firstErrors)
	}
}
