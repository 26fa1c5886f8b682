package redisstore_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/authkit-go/authkit/authtest"
)

// ownRedis is a redis-server of the test's own on a free loopback port,
// keeping nothing on disk: a restart loses its data. It is stopped by PID,
// never the shared one.
type ownRedis struct {
	t    *testing.T
	bin  string
	port int
	cmd  *exec.Cmd
}

func startOwnRedis(t *testing.T) *ownRedis {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("no redis-server binary")
	}
	r := &ownRedis{t: t, bin: bin, port: freePort(t)}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *ownRedis) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

func (r *ownRedis) start() {
	r.cmd = exec.Command(r.bin, "--bind", "127.0.0.1", "--port", strconv.Itoa(r.port), "--save", "", "--appendonly", "no", "--dir", r.t.TempDir())
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: r.addr()})
	defer rdb.Close()
	for end := time.Now().Add(10 * time.Second); rdb.Ping(context.Background()).Err() != nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			r.t.Fatal("our redis-server did not start")
		}
	}
}

// stop kills it: whatever it held is gone.
func (r *ownRedis) stop() {
	if r.cmd != nil {
		r.cmd.Process.Signal(syscall.SIGKILL)
		r.cmd.Wait()
		r.cmd = nil
	}
}

// rotationTap sits in front of the provider's token endpoint and tells the
// test each time the provider has answered a refresh with a rotated
// refresh token: the moment a Redis that loses its data does the most
// damage, since the rotated token may be nowhere but in one process.
type rotationTap struct {
	srv     *httptest.Server
	rotated chan struct{}
	count   atomic.Int32
}

func newRotationTap(t *testing.T, tokenURL string) *rotationTap {
	tap := &rotationTap{rotated: make(chan struct{}, 1)}
	tap.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, tokenURL, bytes.NewReader(body))
		req.Header = r.Header.Clone()
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		for k, vv := range resp.Header {
			w.Header()[k] = vv
		}
		w.WriteHeader(resp.StatusCode)
		w.Write(out)
		if form, _ := url.ParseQuery(string(body)); form.Get("grant_type") == "refresh_token" && resp.StatusCode == http.StatusOK {
			tap.count.Add(1)
			select {
			case tap.rotated <- struct{}{}:
			default:
			}
		}
	}))
	t.Cleanup(tap.srv.Close)
	return tap
}

// TestFleetRedisFaults: 8 processes share one rotating refresh token (the
// provider revokes the login when a spent one comes back) through
// EncryptedStore over the Redis store, through a fault proxy, with 3-second
// tokens. In turn: every connection to Redis dropped for 3 s; Redis a
// black hole (accepts, never answers) for 3 s; 500 ms added to everything
// for 5 s; and Redis killed and started again empty, right after the
// provider rotated the refresh token. Goal: no caller (20 s each) fails, no
// refresh token is presented twice, and token requests stay within
// 2 × (run ÷ lifetime) + faults × processes.
func TestFleetRedisFaults(t *testing.T) {
	skipFleet(t)
	const (
		n        = 8
		lifetime = 3 * time.Second
		run      = 42 * time.Second
		faults   = 4
	)
	srv := startOwnRedis(t)
	proxy := newFaultProxy(t, srv.addr())
	p := fleetProvider(t, lifetime)
	tap := newRotationTap(t, p.TokenURL())
	rt := p.IssueRefreshToken("ada", "cli", []string{"openid", "offline_access"})
	f := startFleet(t, n, envRole+"=rt-encrypted", envTokenURL+"="+tap.srv.URL, envRedisAt+"="+proxy.Addr(),
		envPrefix+"=faults:", envRT+"="+rt, envTimeout+"=1s", envFor+"="+run.String())
	start := time.Now()
	at := func(d time.Duration) { time.Sleep(time.Until(start.Add(d))) }
	fault := func(name string, m faultMode, d time.Duration) {
		t.Logf("%5.1f s: %s for %v", time.Since(start).Seconds(), name, d)
		proxy.SetMode(m)
		time.Sleep(d)
		proxy.SetMode(faultPass)
	}
	at(6 * time.Second)
	fault("every connection dropped", faultDrop, 3*time.Second)
	at(13 * time.Second)
	fault("black hole", faultBlackHole, 3*time.Second)
	at(20 * time.Second)
	proxy.SetDelay(500 * time.Millisecond)
	fault("+500 ms", faultDelay, 5*time.Second)
	at(29 * time.Second)
	// Aim: wait for a rotation, then lose Redis' data at once.
	for len(tap.rotated) > 0 {
		<-tap.rotated
	}
	select {
	case <-tap.rotated:
	case <-time.After(10 * time.Second):
		t.Errorf("no refresh within 10 s: the fleet has lost its login")
	}
	srv.stop()
	t.Logf("%5.1f s: Redis killed right after a rotation; started again empty", time.Since(start).Seconds())
	srv.start()
	t.Logf("%5.1f s: Redis back; %d connections found it down", time.Since(start).Seconds(), proxy.refused.Load())

	calls, failures, finished := f.wait()
	requests, reused := p.Requests(authtest.EndpointToken), p.ReusedRefreshTokens()
	bound := 2*int(run/lifetime) + faults*n
	t.Logf("%d processes (%d finished), %v tokens, %v: %d calls, %d failed; %d token requests (bound %d), %d refreshes, %d logins revoked for reuse",
		n, finished, lifetime, run, calls, failures, requests, bound, tap.count.Load(), reused)
	if failures != 0 {
		t.Errorf("%d failed calls, want 0", failures)
	}
	if reused != 0 {
		t.Errorf("%d refresh tokens presented again (logins revoked), want 0", reused)
	}
	if requests > bound {
		t.Errorf("%d token requests, want at most %d", requests, bound)
	}
	if finished != n {
		t.Errorf("%d of %d workers finished", finished, n)
	}
}
