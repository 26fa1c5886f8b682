package redisstore_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/auth/redisstore"
	"github.com/authkit-go/authkit/authtest"
	"github.com/authkit-go/authkit/handlers"
)

// The fleet tests run worker processes (this test binary again, in
// TestFleetWorker) against an authtest provider in this process, sharing
// tokens through Redis, and count what the provider saw.
const (
	envRole     = "AUTHKIT_FLEET_WORKER" // "cc" (client credentials), "rt" (a rotating refresh token) or "rt-encrypted" (the same through EncryptedStore, calls of 20 s)
	envTokenURL = "AUTHKIT_FLEET_TOKEN_URL"
	envRedisAt  = "AUTHKIT_FLEET_REDIS" // empty: no shared store
	envPrefix   = "AUTHKIT_FLEET_PREFIX"
	envRT       = "AUTHKIT_FLEET_RT"
	envFor      = "AUTHKIT_FLEET_FOR"
	envTimeout  = "AUTHKIT_FLEET_TIMEOUT" // the store's per-operation bound; empty: 300 ms
)

// fleetLease is the workers' lease: a killed holder's lock frees itself
// within it.
const fleetLease = 2 * time.Second

// TestFleetWorker is one worker: it reads its headers every 50 ms for
// AUTHKIT_FLEET_FOR, as a busy service does, then prints its counts.
func TestFleetWorker(t *testing.T) {
	role := os.Getenv(envRole)
	if role == "" {
		t.Skip("a worker of the fleet tests")
	}
	dur, _ := time.ParseDuration(os.Getenv(envFor))
	var store auth.Store
	if addr := os.Getenv(envRedisAt); addr != "" {
		rdb := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 200 * time.Millisecond, MaxRetries: -1, ContextTimeoutEnabled: true})
		timeout := 300 * time.Millisecond
		if v := os.Getenv(envTimeout); v != "" {
			timeout, _ = time.ParseDuration(v)
		}
		s, err := redisstore.New(redisstore.Config{Client: rdb, Prefix: os.Getenv(envPrefix), LeaseTTL: fleetLease,
			Timeout: timeout, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
		if err != nil {
			t.Fatal(err)
		}
		if role == "rt-encrypted" {
			store, err = auth.NewEncryptedStore(auth.EncryptedStoreConfig{Store: s,
				Keys: []auth.EncryptionKey{{ID: "k1", Key: auth.NewSecret("0123456789abcdef0123456789abcdef")}}})
			if err != nil {
				t.Fatal(err)
			}
		} else {
			store = &holderMark{Store: s, rdb: rdb, key: os.Getenv(envPrefix) + "holder"}
		}
	}
	oauth := handlers.OAuthConfig{Endpoints: handlers.Endpoints{TokenURL: os.Getenv(envTokenURL)}, Store: store,
		Margin: auth.Margin{Min: 200 * time.Millisecond}}
	var get func(context.Context) error
	switch role {
	case "cc":
		oauth.ClientID, oauth.ClientSecret = "svc", auth.NewSecret("svc-secret")
		cc, err := handlers.NewClientCredentials(handlers.ClientCredentialsConfig{OAuthConfig: oauth})
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		get = func(ctx context.Context) error { _, err := cc.HubRequestHeaders(ctx); return err }
	default:
		oauth.ClientID = "cli"
		rt, err := handlers.NewRefreshToken(handlers.RefreshTokenConfig{OAuthConfig: oauth, RefreshToken: auth.NewSecret(os.Getenv(envRT))})
		if err != nil {
			t.Fatal(err)
		}
		defer rt.Close()
		get = func(ctx context.Context) error { _, err := rt.HubRequestHeaders(ctx); return err }
	}
	callTimeout := 10 * time.Second
	if role == "rt-encrypted" {
		callTimeout = 20 * time.Second
	}
	calls, failures := 0, 0
	for end := time.Now().Add(dur); time.Now().Before(end); calls++ {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		began := time.Now()
		if err := get(ctx); err != nil {
			failures++
			fmt.Fprintln(os.Stderr, "worker: call failed:", err)
		}
		if d := time.Since(began); d > callTimeout*3/10 {
			fmt.Fprintf(os.Stderr, "worker %d: a call took %v (began %s)\n", os.Getpid(), d.Round(time.Millisecond), began.Format("15:04:05.000"))
		}
		cancel()
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Printf("RESULT %d %d\n", calls, failures)
}

// holderMark is the workers' store: it writes the holder's PID beside the
// lease, so that the kill test can find the holder.
type holderMark struct {
	*redisstore.Store
	rdb *redis.Client
	key string
}

func (m *holderMark) Lock(ctx context.Context, key auth.StoreKey) (func(), error) {
	unlock, err := m.Store.Lock(ctx, key)
	if err != nil {
		return nil, err
	}
	m.rdb.Set(context.Background(), m.key, os.Getpid(), fleetLease)
	return func() { m.rdb.Del(context.Background(), m.key); unlock() }, nil
}

// fleet is a set of running workers.
type fleet struct {
	t        *testing.T
	env      []string
	mu       sync.Mutex
	cmds     []*exec.Cmd
	results  []string
	failures []string // the first failed calls' errors
	wg       sync.WaitGroup
}

func startFleet(t *testing.T, n int, env ...string) *fleet {
	f := &fleet{t: t, env: env}
	for range n {
		f.spawn()
	}
	return f
}

// spawn starts one more worker, with extra settings after the fleet's.
func (f *fleet) spawn(extra ...string) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestFleetWorker$", "-test.count=1")
	cmd.Env = append(append(os.Environ(), f.env...), extra...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		f.t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	f.mu.Lock()
	f.cmds = append(f.cmds, cmd)
	f.mu.Unlock()
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, "RESULT ") {
				f.mu.Lock()
				f.results = append(f.results, strings.TrimPrefix(line, "RESULT "))
				f.mu.Unlock()
			}
		}
		if err := cmd.Wait(); err != nil && !killed(cmd) {
			f.t.Errorf("worker %d: %v\n%s", cmd.Process.Pid, err, stderr.String())
		}
		if i := strings.Index(stderr.String(), "worker: call failed:"); i >= 0 {
			f.mu.Lock()
			if len(f.failures) < 3 {
				f.failures = append(f.failures, lastLines(stderr.String(), 12))
			}
			f.mu.Unlock()
		}
	}()
}

func killed(cmd *exec.Cmd) bool {
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled()
}

// wait waits for every worker and returns the calls and failures of those
// that finished.
func (f *fleet) wait() (calls, failures, finished int) {
	f.wg.Wait()
	for _, r := range f.results {
		var c, e int
		fmt.Sscan(r, &c, &e)
		calls, failures = calls+c, failures+e
	}
	for _, l := range f.failures {
		f.t.Log(l)
	}
	return calls, failures, len(f.results)
}

func fleetProvider(t *testing.T, lifetime time.Duration) *authtest.Provider {
	p := authtest.NewProvider(authtest.ProviderConfig{AccessTokenLifetime: lifetime, RefreshTokenLifetime: time.Hour,
		Clients: []authtest.Client{{ID: "svc", Secret: "svc-secret"}, {ID: "cli"}}, Users: []authtest.User{{Username: "ada"}}})
	t.Cleanup(p.Close)
	return p
}

func skipFleet(t *testing.T) string {
	if testing.Short() {
		t.Skip("runs fleets of processes for half a minute")
	}
	if raceEnabled {
		t.Skip("timing test of 16 processes: run without -race (go test -run TestFleet ./auth/redisstore/), as .ci/run does")
	}
	rdb, _ := testClient(t) // skips, or fails under CI=true, without Redis
	return rdb.(*redis.Client).Options().Addr
}

// TestFleetClientCredentials: 16 processes with 2-second client
// credentials tokens for 30 s. Sharing Redis, the fleet fetches as one
// process does (one token per refresh interval); each on its own, 16 times
// that.
func TestFleetClientCredentials(t *testing.T) {
	addr := skipFleet(t)
	const n, lifetime, run = 16, 2 * time.Second, 30 * time.Second
	shared, alone := fleetProvider(t, lifetime), fleetProvider(t, lifetime)
	_, prefix := testClient(t)
	a := startFleet(t, n, envRole+"=cc", envTokenURL+"="+shared.TokenURL(), envRedisAt+"="+addr, envPrefix+"="+prefix, envFor+"="+run.String())
	b := startFleet(t, n, envRole+"=cc", envTokenURL+"="+alone.TokenURL(), envFor+"="+run.String())
	callsA, failA, _ := a.wait()
	callsB, failB, _ := b.wait()
	hitsA, hitsB := shared.Requests(authtest.EndpointToken), alone.Requests(authtest.EndpointToken)
	// One process refreshes its 2-second tokens about once a second: the
	// provider's exp is whole seconds, so a token lives 1 to 2 s, and is
	// refreshed a margin before. The shared fleet must fetch as one process.
	bound := hitsB/n + 2
	t.Logf("%d processes, %v tokens, %v: token requests %d with the shared store (bound %d: one process's %d, plus 2), %d without; calls %d and %d, failed %d and %d",
		n, lifetime, run, hitsA, bound, hitsB/n, hitsB, callsA, callsB, failA, failB)
	if hitsA > bound {
		t.Errorf("the fleet made %d token requests, want at most %d", hitsA, bound)
	}
	if failA+failB != 0 {
		t.Errorf("%d failed calls", failA+failB)
	}
}

// TestFleetRotatingRefreshToken: 16 processes share one user's refresh
// token, which the provider rotates with strict reuse detection.
func TestFleetRotatingRefreshToken(t *testing.T) {
	addr := skipFleet(t)
	p := fleetProvider(t, 2*time.Second)
	_, prefix := testClient(t)
	rt := p.IssueRefreshToken("ada", "cli", []string{"openid", "offline_access"})
	f := startFleet(t, 16, envRole+"=rt", envTokenURL+"="+p.TokenURL(), envRedisAt+"="+addr, envPrefix+"="+prefix, envRT+"="+rt, envFor+"=20s")
	calls, failures, _ := f.wait()
	t.Logf("16 processes, one rotating refresh token, 20 s: %d calls, %d failed, %d refreshes, %d logins revoked for reuse",
		calls, failures, p.GrantRequests(authtest.GrantRefreshToken), p.ReusedRefreshTokens())
	if failures != 0 || p.ReusedRefreshTokens() != 0 {
		t.Errorf("%d failed calls, %d revoked logins; want 0 and 0", failures, p.ReusedRefreshTokens())
	}
}

// TestFleetKillTheLockHolder: the holder of the lease is killed -9 in the
// middle of its fetch (the provider takes 1 s to answer), 10 times; another
// process takes over within the lease, and no call of the others fails.
func TestFleetKillTheLockHolder(t *testing.T) {
	addr := skipFleet(t)
	// Tokens that outlive a slow answer: a 2-second token (1 to 2 s, the
	// provider's exp being whole seconds) arrives after a 1 s answer nearly
	// spent, so each waiter fetches again in turn, 1 s each (calls of 4 to
	// 10 s, measured). 4-second tokens show the takeover alone.
	p := fleetProvider(t, 4*time.Second)
	p.SetLatency(time.Second)
	rdb, prefix := testClient(t)
	f := startFleet(t, 16, envRole+"=cc", envTokenURL+"="+p.TokenURL(), envRedisAt+"="+addr, envPrefix+"="+prefix, envFor+"=45s")
	var worst time.Duration
	for kill := range 10 {
		pid := waitHolder(t, rdb, prefix+"holder", 0)
		var victim *exec.Cmd
		f.mu.Lock()
		for _, c := range f.cmds {
			if c.Process.Pid == pid {
				victim = c
			}
		}
		f.mu.Unlock()
		if victim == nil {
			t.Fatalf("kill %d: holder %d is not a worker", kill, pid)
		}
		victim.Process.Signal(syscall.SIGKILL)
		at := time.Now()
		waitFree(t, rdb, prefix+"holder", pid) // its lease has ended: anyone may take the lock
		took := time.Since(at)
		worst = max(worst, took)
		t.Logf("kill %d: holder %d killed mid-fetch; its lease ended %v later", kill+1, pid, took.Round(time.Millisecond))
		f.spawn(envFor + "=10s")    // keep 16
		time.Sleep(3 * time.Second) // one kill at a time: the fleet recovers before the next
	}
	calls, failures, finished := f.wait()
	t.Logf("10 kills: longest wait for the lock to be free again %v (lease %v); %d workers finished with %d calls, %d failed",
		worst.Round(time.Millisecond), fleetLease, finished, calls, failures)
	if worst > fleetLease+200*time.Millisecond {
		t.Errorf("a dead holder's lock stayed taken %v, want within the lease (%v)", worst, fleetLease)
	}
	if failures != 0 {
		t.Errorf("%d failed calls", failures)
	}
}

// waitFree waits until the holder mark of pid is gone: it is written with
// the lease's time to live, so it ends with the dead holder's lease.
func waitFree(t *testing.T, rdb redis.UniversalClient, key string, pid int) {
	t.Helper()
	for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if v, err := rdb.Get(context.Background(), key).Result(); err == redis.Nil || v != strconv.Itoa(pid) {
			return
		}
	}
	t.Fatalf("the lock of killed holder %d is still taken after 15 s", pid)
}

// waitHolder waits for a holder PID other than not.
func waitHolder(t *testing.T, rdb redis.UniversalClient, key string, not int) int {
	t.Helper()
	for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		v, err := rdb.Get(context.Background(), key).Result()
		if err != nil {
			continue
		}
		if pid, _ := strconv.Atoi(v); pid != 0 && pid != not {
			return pid
		}
	}
	t.Fatalf("no lock holder other than %d within 15 s", not)
	return 0
}

// TestFleetRedisOutage: the fleet's own Redis is stopped for 10 s in the
// middle of a 30 s run and started again: no call fails; token requests
// rise while it is away (every process fetches for itself) and come back
// to the shared rate after.
func TestFleetRedisOutage(t *testing.T) {
	skipFleet(t)
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("no redis-server binary")
	}
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	startRedis := func() *exec.Cmd {
		cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--save", "", "--appendonly", "no", "--dir", t.TempDir())
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		rdb := redis.NewClient(&redis.Options{Addr: addr})
		defer rdb.Close()
		for end := time.Now().Add(10 * time.Second); rdb.Ping(context.Background()).Err() != nil; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatal("our redis-server did not start")
			}
		}
		return cmd
	}
	stop := func(cmd *exec.Cmd) { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() } // ours only, by PID
	srv := startRedis()
	t.Cleanup(func() { stop(srv) })

	p := fleetProvider(t, 2*time.Second)
	f := startFleet(t, 16, envRole+"=cc", envTokenURL+"="+p.TokenURL(), envRedisAt+"="+addr, envPrefix+"=outage:", envFor+"=30s")
	phase := func(d time.Duration) int {
		before := p.Requests(authtest.EndpointToken)
		time.Sleep(d)
		return p.Requests(authtest.EndpointToken) - before
	}
	warm := phase(2 * time.Second)
	before := phase(6 * time.Second)
	stop(srv)
	during := phase(10 * time.Second)
	srv = startRedis()
	settle := phase(2 * time.Second)
	after := phase(8 * time.Second)
	calls, failures, _ := f.wait()
	t.Logf("token requests: %d in 6 s before the outage, %d in the 10 s without Redis, %d in 8 s after (plus %d warming up and %d settling); %d calls, %d failed",
		before, during, after, warm, settle, calls, failures)
	if failures != 0 {
		t.Errorf("%d failed calls", failures)
	}
	if during <= before*10/6 {
		t.Errorf("without Redis the fleet made %d token requests in 10 s, no more than with it (%d in 6 s): it did not fetch on its own", during, before)
	}
	if after > before*8/6+4 {
		t.Errorf("after Redis came back: %d token requests in 8 s, want about the shared rate (%d in 6 s)", after, before)
	}
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
