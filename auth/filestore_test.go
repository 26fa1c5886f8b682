package auth_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofrs/flock"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/authtest"
	"github.com/authkit-go/authkit/internal/fakeclock"
)

// fsSecrets are the secret values of fsToken; no log record may contain one.
var fsSecrets = []string{"at-SECRET-1", "rt-SECRET-1", "id-SECRET-1", "extra-SECRET-1"}

func fsToken() *auth.Token {
	return &auth.Token{
		AccessToken:   auth.NewSecret("at-SECRET-1"),
		TokenType:     "Bearer",
		RefreshToken:  auth.NewSecret("rt-SECRET-1"),
		IDToken:       auth.NewSecret("id-SECRET-1"),
		Scope:         "a b",
		Expiry:        time.Date(2030, 1, 1, 1, 0, 0, 0, time.UTC),
		RefreshExpiry: time.Date(2030, 2, 1, 0, 0, 0, 0, time.UTC),
		Extra:         map[string]auth.Secret{"session_state": auth.NewSecret("extra-SECRET-1")},
	}
}

func fsKey() auth.StoreKey {
	return auth.StoreKey{Issuer: "https://idp.example", ClientID: "cli", Username: "ann", Scopes: []string{"a", "b"}}
}

// logBuffer collects slog records; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// assertNoSecrets fails if the log holds any of fsSecrets.
func (b *logBuffer) assertNoSecrets(t *testing.T) {
	t.Helper()
	out := b.String()
	for _, s := range fsSecrets {
		if strings.Contains(out, s) {
			t.Errorf("log leaks secret %q:\n%s", s, out)
		}
	}
}

func newFileStore(t *testing.T, dir string, logs *logBuffer) *auth.FileStore {
	t.Helper()
	cfg := auth.FileStoreConfig{Dir: dir, Clock: authtest.NewClock(time.Time{})}
	if logs != nil {
		cfg.Logger = logs.logger()
	}
	s, err := auth.NewFileStore(cfg)
	if err != nil {
		t.Fatalf("NewFileStore: %v", err)
	}
	return s
}

func perm(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func sameToken(t *testing.T, got, want *auth.Token) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if !bytes.Equal(g, w) {
		t.Errorf("token = %s\nwant    %s", g, w)
	}
}

func TestFileStorePermissions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Unix permissions")
	}
	tests := []struct {
		name    string
		sub     string           // the store's directory, below a temporary one
		prepare func(dir string) // makes the directory beforehand, if set
	}{
		{name: "created", sub: "tokens"},
		{name: "created with parents", sub: "a/b/tokens"},
		{name: "existing private", sub: "tokens", prepare: func(dir string) { _ = os.Mkdir(dir, 0o700) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), filepath.FromSlash(tt.sub))
			if tt.prepare != nil {
				tt.prepare(dir)
			}
			logs := &logBuffer{}
			s := newFileStore(t, dir, logs)
			if got := perm(t, dir); got != 0o700 {
				t.Errorf("directory mode = %04o, want 0700", got)
			}
			if err := s.Save(context.Background(), fsKey(), fsToken()); err != nil {
				t.Fatal(err)
			}
			path := auth.FileStorePath(s, fsKey())
			if got := perm(t, path); got != 0o600 {
				t.Errorf("file mode = %04o, want 0600", got)
			}
			sum := sha256.Sum256([]byte(fsKey().Identity()))
			if want := hex.EncodeToString(sum[:]) + ".json"; filepath.Base(path) != want {
				t.Errorf("file name = %s, want %s", filepath.Base(path), want)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Errorf("directory holds %d entries, want only the token file", len(entries))
			}
			unlock, err := s.Lock(context.Background(), fsKey())
			if err != nil {
				t.Fatal(err)
			}
			unlock()
			if got := perm(t, auth.FileStoreLockPath(s, fsKey())); got != 0o600 {
				t.Errorf("lock file mode = %04o, want 0600", got)
			}
		})
	}
}

// TestFileStoreRefusesAnOpenExistingDirectory: a directory that exists
// and that group or others may access (a shared config directory, ".") is
// refused with an error that says how to fix it, and its mode is left as
// it was: the store never changes the mode of a directory it did not
// create.
func TestFileStoreRefusesAnOpenExistingDirectory(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Unix permissions")
	}
	for _, mode := range []os.FileMode{0o755, 0o750, 0o701, 0o707} {
		t.Run(fmt.Sprintf("%04o", mode), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "shared")
			if err := os.Mkdir(dir, mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, mode); err != nil { // past the umask
				t.Fatal(err)
			}
			_, err := auth.NewFileStore(auth.FileStoreConfig{Dir: dir})
			if !errors.Is(err, auth.ErrInvalidConfig) {
				t.Fatalf("NewFileStore = %v, want ErrInvalidConfig", err)
			}
			if want := fmt.Sprintf("chmod 700 %s", dir); !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say how to fix it (%q)", err, want)
			}
			if got := perm(t, dir); got != mode {
				t.Errorf("directory mode = %04o after NewFileStore, want %04o unchanged", got, mode)
			}
		})
	}
}

func TestFileStoreDirectoryErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		dir  string
	}{
		{name: "a file", dir: file},
		{name: "below a file", dir: filepath.Join(file, "sub")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := auth.NewFileStore(auth.FileStoreConfig{Dir: tt.dir}); err == nil {
				t.Errorf("NewFileStore(%q) succeeded, want an error", tt.dir)
			}
		})
	}
}

func TestFileStoreSaveLoad(t *testing.T) {
	s := newFileStore(t, privateDir(t), nil)
	ctx := context.Background()
	if tok, err := s.Load(ctx, fsKey()); tok != nil || err != nil {
		t.Fatalf("Load of nothing = %v, %v; want nil, nil", tok, err)
	}
	if err := s.Save(ctx, fsKey(), fsToken()); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load(ctx, fsKey())
	if err != nil {
		t.Fatal(err)
	}
	sameToken(t, got, fsToken())

	var entry struct {
		Version int           `json:"version"`
		Key     auth.StoreKey `json:"key"`
		Token   auth.Token    `json:"token"`
		SavedAt time.Time     `json:"saved_at"`
	}
	data, err := os.ReadFile(auth.FileStorePath(s, fsKey()))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &entry); err != nil {
		t.Fatal(err)
	}
	if entry.Version != 1 || !entry.Key.Equal(fsKey()) || entry.SavedAt.IsZero() {
		t.Errorf("file = %s; want version 1, the key and saved_at", data)
	}

	// A second save replaces the first.
	tok2 := fsToken()
	tok2.AccessToken = auth.NewSecret("at-2")
	if err := s.Save(ctx, fsKey(), tok2); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Load(ctx, fsKey())
	sameToken(t, got, tok2)
}

func TestFileStoreConfigMismatch(t *testing.T) {
	tests := []struct {
		name  string
		load  func(k *auth.StoreKey)
		found bool
	}{
		{name: "same", load: func(k *auth.StoreKey) {}, found: true},
		{name: "scopes in another order", load: func(k *auth.StoreKey) { k.Scopes = []string{"b", "a"} }, found: true},
		{name: "scopes as one string", load: func(k *auth.StoreKey) { k.Scopes = []string{"b a"} }, found: true},
		{name: "other scopes", load: func(k *auth.StoreKey) { k.Scopes = []string{"a", "c"} }},
		{name: "fewer scopes", load: func(k *auth.StoreKey) { k.Scopes = []string{"a"} }},
		{name: "other audience", load: func(k *auth.StoreKey) { k.Audiences = []string{"api"} }},
		{name: "other user", load: func(k *auth.StoreKey) { k.Username = "bob" }},
		{name: "other client", load: func(k *auth.StoreKey) { k.ClientID = "other" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &logBuffer{}
			s := newFileStore(t, privateDir(t), logs)
			ctx := context.Background()
			if err := s.Save(ctx, fsKey(), fsToken()); err != nil {
				t.Fatal(err)
			}
			key := fsKey()
			tt.load(&key)
			got, err := s.Load(ctx, key)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if (got != nil) != tt.found {
				t.Fatalf("Load found a token: %v, want %v", got != nil, tt.found)
			}
			if !tt.found && key.Identity() == fsKey().Identity() && !strings.Contains(logs.String(), "another configuration") {
				t.Errorf("no debug record for the mismatch; log:\n%s", logs.String())
			}
			logs.assertNoSecrets(t)
		})
	}
}

func TestFileStoreUnusableFiles(t *testing.T) {
	valid := func(t *testing.T) []byte {
		t.Helper()
		s := newFileStore(t, privateDir(t), nil)
		if err := s.Save(context.Background(), fsKey(), fsToken()); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(auth.FileStorePath(s, fsKey()))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	write := func(content func(valid []byte) []byte, mode os.FileMode) func(t *testing.T, path string) {
		return func(t *testing.T, path string) {
			if err := os.WriteFile(path, content(valid(t)), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, mode); err != nil {
				t.Fatal(err)
			}
		}
	}
	replace := func(old, new string) func([]byte) []byte {
		return func(v []byte) []byte { return bytes.Replace(v, []byte(old), []byte(new), 1) }
	}
	tests := []struct {
		name    string
		create  func(t *testing.T, path string)
		wantLog string
		unix    bool
	}{
		{name: "empty", create: write(func([]byte) []byte { return nil }, 0o600), wantLog: "empty file"},
		{name: "truncated", create: write(func(v []byte) []byte { return v[:len(v)*2/3] }, 0o600), wantLog: "truncated JSON"},
		{name: "corrupt JSON", create: write(func(v []byte) []byte { return append([]byte("garbage "), v...) }, 0o600), wantLog: "invalid JSON"},
		{name: "not an object", create: write(func([]byte) []byte { return []byte(`["at-SECRET-1"]`) }, 0o600), wantLog: "corrupt file"},
		{name: "unknown version", create: write(replace(`"version": 1`, `"version": 3`), 0o600), wantLog: "unknown format version 3"},
		{name: "no version", create: write(replace(`"version": 1,`, ``), 0o600), wantLog: "unknown format version 0"},
		{name: "null token", create: write(func([]byte) []byte {
			return []byte(`{"version":1,"key":{"issuer":"https://idp.example","client_id":"cli","username":"ann","scopes":["a","b"]},"token":null}`)
		}, 0o600), wantLog: "corrupt file: token missing"},
		{name: "secret in a field of the wrong type", create: write(replace(`"expiry": "2030-01-01T01:00:00Z"`, `"expiry": "at-SECRET-1"`), 0o600), wantLog: "corrupt file: token"},
		{name: "secret as a number", create: write(replace(`"token_type": "Bearer"`, `"token_type": 7`), 0o600), wantLog: "wrong type"},
		{name: "readable by others", create: write(func(v []byte) []byte { return v }, 0o644), wantLog: "lets others read it", unix: true},
		{name: "a directory", create: func(t *testing.T, path string) { _ = os.Mkdir(path, 0o700) }, wantLog: "not a regular file"},
		{name: "a symlink", create: func(t *testing.T, path string) {
			target := filepath.Join(t.TempDir(), "target")
			write(func(v []byte) []byte { return v }, 0o600)(t, target)
			if err := os.Symlink(target, path); err != nil {
				t.Skip("no symlinks:", err)
			}
		}, wantLog: "not a regular file", unix: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.unix && runtime.GOOS == "windows" {
				t.Skip("Unix only")
			}
			logs := &logBuffer{}
			s := newFileStore(t, privateDir(t), logs)
			tt.create(t, auth.FileStorePath(s, fsKey()))
			got, err := s.Load(context.Background(), fsKey())
			if got != nil || err != nil {
				t.Fatalf("Load = %v, %v; want nil, nil", got, err)
			}
			if !strings.Contains(logs.String(), tt.wantLog) {
				t.Errorf("log does not contain %q:\n%s", tt.wantLog, logs.String())
			}
			logs.assertNoSecrets(t)

			// The store recovers: a save replaces the bad file.
			if tt.name == "a directory" {
				return
			}
			if err := s.Save(context.Background(), fsKey(), fsToken()); err != nil {
				t.Fatal(err)
			}
			if got, _ := s.Load(context.Background(), fsKey()); got == nil {
				t.Error("Load after Save = nil")
			}
		})
	}
}

func TestFileStoreFailedWriteKeepsOldFile(t *testing.T) {
	errDisk := errors.New("disk full")
	tests := []struct {
		name string
		hook func(f *os.File, data []byte) (int, error)
	}{
		{name: "nothing written", hook: func(*os.File, []byte) (int, error) { return 0, errDisk }},
		{name: "half written", hook: func(f *os.File, data []byte) (int, error) {
			n, _ := f.Write(data[:len(data)/2])
			return n, errDisk
		}},
		{name: "all written then failed", hook: func(f *os.File, data []byte) (int, error) {
			n, _ := f.Write(data)
			return n, errDisk
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := privateDir(t)
			s := newFileStore(t, dir, nil)
			ctx := context.Background()
			if err := s.Save(ctx, fsKey(), fsToken()); err != nil {
				t.Fatal(err)
			}
			auth.SetFileStoreWriteHook(s, tt.hook)
			tok2 := fsToken()
			tok2.AccessToken = auth.NewSecret("at-NEW")
			if err := s.Save(ctx, fsKey(), tok2); !errors.Is(err, errDisk) {
				t.Fatalf("Save = %v, want %v", err, errDisk)
			}
			got, err := s.Load(ctx, fsKey())
			if err != nil || got == nil {
				t.Fatalf("Load = %v, %v; want the old token", got, err)
			}
			sameToken(t, got, fsToken())
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Errorf("directory holds %d entries, want the token file only (temporary file removed)", len(entries))
			}
		})
	}
}

func TestFileStoreDelete(t *testing.T) {
	tests := []struct {
		name  string
		saved bool
		key   func(k *auth.StoreKey)
	}{
		{name: "saved", saved: true, key: func(*auth.StoreKey) {}},
		{name: "saved with other scopes", saved: true, key: func(k *auth.StoreKey) { k.Scopes = []string{"z"} }},
		{name: "absent", key: func(*auth.StoreKey) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newFileStore(t, privateDir(t), nil)
			ctx := context.Background()
			if tt.saved {
				if err := s.Save(ctx, fsKey(), fsToken()); err != nil {
					t.Fatal(err)
				}
			}
			key := fsKey()
			tt.key(&key)
			if err := s.Delete(ctx, key); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			if _, err := os.Stat(auth.FileStorePath(s, fsKey())); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("token file still there: %v", err)
			}
			if got, err := s.Load(ctx, fsKey()); got != nil || err != nil {
				t.Errorf("Load after Delete = %v, %v; want nil, nil", got, err)
			}
		})
	}
}

func TestFileStoreCancelledContext(t *testing.T) {
	s := newFileStore(t, privateDir(t), nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls := []struct {
		name string
		call func() error
	}{
		{name: "Load", call: func() error { _, err := s.Load(ctx, fsKey()); return err }},
		{name: "Save", call: func() error { return s.Save(ctx, fsKey(), fsToken()) }},
		{name: "Delete", call: func() error { return s.Delete(ctx, fsKey()) }},
		{name: "Lock", call: func() error { _, err := s.Lock(ctx, fsKey()); return err }},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			if err := c.call(); !errors.Is(err, context.Canceled) {
				t.Errorf("%s = %v, want context.Canceled", c.name, err)
			}
		})
	}
}

func TestFileStoreLockExcludes(t *testing.T) {
	dir := privateDir(t)
	// Two stores on one directory, as two engines of one process would have.
	stores := []*auth.FileStore{newFileStore(t, dir, nil), newFileStore(t, dir, nil)}
	var inside, overlaps atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			s := stores[i%2]
			for range 20 {
				unlock, err := s.Lock(context.Background(), fsKey())
				if err != nil {
					t.Error(err)
					return
				}
				if n := inside.Add(1); n > 1 {
					overlaps.Add(1)
				}
				runtime.Gosched()
				inside.Add(-1)
				unlock()
			}
		})
	}
	wg.Wait()
	if n := overlaps.Load(); n != 0 {
		t.Errorf("the lock was held by two goroutines at once %d times", n)
	}
}

func TestFileStoreLockWaitsAsLongAsCtx(t *testing.T) {
	tests := []struct {
		name string
		hold func(t *testing.T, s *auth.FileStore) (release func())
	}{
		{name: "held in this process", hold: func(t *testing.T, s *auth.FileStore) func() {
			unlock, err := s.Lock(context.Background(), fsKey())
			if err != nil {
				t.Fatal(err)
			}
			return unlock
		}},
		{name: "file lock held elsewhere", hold: func(t *testing.T, s *auth.FileStore) func() {
			// A separate open file description, as another process has.
			fl := flock.New(auth.FileStoreLockPath(s, fsKey()))
			if ok, err := fl.TryLock(); !ok || err != nil {
				t.Fatalf("TryLock = %v, %v", ok, err)
			}
			return func() { _ = fl.Unlock() }
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newFileStore(t, privateDir(t), nil)
			release := tt.hold(t, s)
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			if unlock, err := s.Lock(ctx, fsKey()); !errors.Is(err, context.DeadlineExceeded) {
				if unlock != nil {
					unlock()
				}
				t.Fatalf("Lock while held = %v, want context.DeadlineExceeded", err)
			}
			release()
			unlock, err := s.Lock(context.Background(), fsKey())
			if err != nil {
				t.Fatalf("Lock after release: %v", err)
			}
			unlock()
			unlock() // a second call is harmless
			unlock, err = s.Lock(context.Background(), fsKey())
			if err != nil {
				t.Fatalf("Lock after double unlock: %v", err)
			}
			unlock()
		})
	}
}

// TestFileStoreEnginesShareOneFetch runs two engines of one process on one
// directory: the one that fetches second finds the first one's token.
func TestFileStoreEnginesShareOneFetch(t *testing.T) {
	dir := privateDir(t)
	clock := authtest.NewClock(time.Time{})
	expired := &auth.Token{AccessToken: auth.NewSecret("old"), RefreshToken: auth.NewSecret("r0"), Expiry: clock.Now().Add(-time.Minute)}
	if err := newFileStore(t, dir, nil).Save(context.Background(), fsKey(), expired); err != nil {
		t.Fatal(err)
	}
	var fetches atomic.Int32
	var spent []string
	var mu sync.Mutex
	newEng := func() *auth.Engine {
		e, err := auth.NewEngine(auth.EngineConfig{
			Clock:    clock,
			Store:    newFileStore(t, dir, nil),
			StoreKey: fsKey(),
			Fetch: func(ctx context.Context, current *auth.Token) (*auth.Token, error) {
				n := fetches.Add(1)
				mu.Lock()
				spent = append(spent, current.RefreshToken.Reveal())
				mu.Unlock()
				return &auth.Token{AccessToken: auth.NewSecret(fmt.Sprintf("at-%d", n)), RefreshToken: auth.NewSecret(fmt.Sprintf("r%d", n)), Expiry: clock.Now().Add(time.Hour)}, nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.Close() })
		return e
	}
	engines := []*auth.Engine{newEng(), newEng()}
	got := make([]string, len(engines))
	var wg sync.WaitGroup
	for i, e := range engines {
		wg.Go(func() {
			tok, err := e.Token(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			got[i] = tok.AccessToken.Reveal()
		})
	}
	wg.Wait()
	if n := fetches.Load(); n != 1 {
		t.Errorf("%d fetches, want 1 (refresh tokens spent: %v)", n, spent)
	}
	if got[0] != got[1] {
		t.Errorf("engines got %q and %q, want the same token", got[0], got[1])
	}
}

const helperEnv = "AUTHKIT_FILESTORE_HELPER_DIR"

// TestFileStoreTwoProcesses starts two processes that hold the same expired
// token in one directory and ask for credentials at the same moment: the
// file lock lets exactly one of them spend the refresh token.
func TestFileStoreTwoProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	dir := privateDir(t)
	storeDir := filepath.Join(dir, "tokens")
	expired := &auth.Token{AccessToken: auth.NewSecret("old"), RefreshToken: auth.NewSecret("r0"), Expiry: time.Now().Add(-time.Hour)}
	if err := newFileStore(t, storeDir, nil).Save(context.Background(), fsKey(), expired); err != nil {
		t.Fatal(err)
	}

	type proc struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
		lines chan string
	}
	procs := make([]*proc, 2)
	for i := range procs {
		cmd := exec.Command(os.Args[0], "-test.run=^TestFileStoreHelperProcess$", "-test.v")
		cmd.Env = append(os.Environ(), helperEnv+"="+dir)
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		p := &proc{cmd: cmd, stdin: stdin, lines: make(chan string, 100)}
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				p.lines <- sc.Text()
			}
			close(p.lines)
		}()
		procs[i] = p
	}
	t.Cleanup(func() {
		for _, p := range procs {
			_ = p.stdin.Close()
			_ = p.cmd.Wait()
		}
	})
	// expect returns the rest of the first line with the prefix.
	expect := func(p *proc, prefix string) string {
		t.Helper()
		timeout := time.After(60 * time.Second)
		for {
			select {
			case line, ok := <-p.lines:
				if !ok {
					t.Fatalf("helper %d ended before printing %q", p.cmd.Process.Pid, prefix)
				}
				if rest, found := strings.CutPrefix(line, prefix); found {
					return rest
				}
			case <-timeout:
				t.Fatalf("helper %d did not print %q", p.cmd.Process.Pid, prefix)
			}
		}
	}
	// The start barrier: both are ready, then both are released at once.
	for _, p := range procs {
		expect(p, "helper: ready")
	}
	for _, p := range procs {
		if _, err := io.WriteString(p.stdin, "go\n"); err != nil {
			t.Fatal(err)
		}
	}
	var tokens []string
	for _, p := range procs {
		tokens = append(tokens, expect(p, "helper: token "))
	}

	log, err := os.ReadFile(filepath.Join(dir, "fetches.log"))
	if err != nil {
		t.Fatal(err)
	}
	fetches := strings.Split(strings.TrimSpace(string(log)), "\n")
	if len(fetches) != 1 {
		t.Fatalf("%d fetches across the processes, want 1:\n%s", len(fetches), log)
	}
	if !strings.HasSuffix(fetches[0], " spent r0") {
		t.Errorf("fetch = %q, want it to spend r0", fetches[0])
	}
	if tokens[0] != tokens[1] {
		t.Errorf("processes got %q and %q, want the same access token", tokens[0], tokens[1])
	}
	stored, err := newFileStore(t, storeDir, nil).Load(context.Background(), fsKey())
	if err != nil || stored == nil || stored.AccessToken.Reveal() != tokens[0] || stored.RefreshToken.Reveal() == "r0" {
		t.Errorf("stored token = %v, %v; want the new token with a rotated refresh token", stored, err)
	}
}

// TestFileStoreHelperProcess is one process of TestFileStoreTwoProcesses; it
// does nothing when run directly.
func TestFileStoreHelperProcess(t *testing.T) {
	dir := os.Getenv(helperEnv)
	if dir == "" {
		t.Skip("helper process of TestFileStoreTwoProcesses")
	}
	store, err := auth.NewFileStore(auth.FileStoreConfig{Dir: filepath.Join(dir, "tokens")})
	if err != nil {
		t.Fatal(err)
	}
	pid := os.Getpid()
	e, err := auth.NewEngine(auth.EngineConfig{
		Store:    store,
		StoreKey: fsKey(),
		Fetch: func(ctx context.Context, current *auth.Token) (*auth.Token, error) {
			f, err := os.OpenFile(filepath.Join(dir, "fetches.log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
			if err != nil {
				return nil, err
			}
			_, err = fmt.Fprintf(f, "pid %d spent %s\n", pid, current.RefreshToken.Reveal())
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return nil, err
			}
			// A slow identity provider: without the lock, the other
			// process would start its own fetch meanwhile.
			time.Sleep(300 * time.Millisecond)
			return &auth.Token{
				AccessToken:  auth.NewSecret(fmt.Sprintf("at-from-%d", pid)),
				RefreshToken: auth.NewSecret(fmt.Sprintf("rt-from-%d", pid)),
				Expiry:       time.Now().Add(time.Hour),
			}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	fmt.Println("helper: ready")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tok, err := e.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("helper: token " + tok.AccessToken.Reveal())
}

// TestFileStoreRecoversInterruptedSave: a process killed between writing
// its temporary file and renaming it leaves the newest token in that file;
// the next Lock (under which no writer of the key can be alive) finishes
// the save, and removes every other temporary file of the key.
func TestFileStoreRecoversInterruptedSave(t *testing.T) {
	ctx := context.Background()
	newer := fsToken()
	newer.AccessToken, newer.RefreshToken = auth.NewSecret("at-ROTATED"), auth.NewSecret("rt-ROTATED")
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	// entry returns the bytes of a token file saved at the given time.
	entry := func(tok *auth.Token, at time.Time, key auth.StoreKey) []byte {
		src := filepath.Join(t.TempDir(), "tokens")
		s, err := auth.NewFileStore(auth.FileStoreConfig{Dir: src, Clock: fakeclock.New(at)})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Save(ctx, key, tok); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(auth.FileStorePath(s, key))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	otherKey := fsKey()
	otherKey.Username = "someone-else"
	tests := []struct {
		name     string
		main     bool // a token file saved at t0 exists
		temp     []byte
		mode     os.FileMode
		want     *auth.Token
		tempGone bool
	}{
		{"complete and newer: finished", true, entry(newer, t0.Add(time.Second), fsKey()), 0o600, newer, true},
		{"complete, no token file yet: finished", false, entry(newer, t0.Add(time.Second), fsKey()), 0o600, newer, true},
		{"older than the token file: removed", true, entry(newer, t0.Add(-time.Second), fsKey()), 0o600, fsToken(), true},
		{"cut short by the kill: removed", true, entry(newer, t0.Add(time.Second), fsKey())[:40], 0o600, fsToken(), true},
		{"readable by others: not trusted, removed", true, entry(newer, t0.Add(time.Second), fsKey()), 0o644, fsToken(), true},
		{"of another identity under this name: removed", true, entry(newer, t0.Add(time.Second), otherKey), 0o600, fsToken(), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "tokens")
			s, err := auth.NewFileStore(auth.FileStoreConfig{Dir: dir, Clock: fakeclock.New(t0)})
			if err != nil {
				t.Fatal(err)
			}
			main := auth.FileStorePath(s, fsKey())
			if tt.main {
				if err := s.Save(ctx, fsKey(), fsToken()); err != nil {
					t.Fatal(err)
				}
			}
			temp := filepath.Join(dir, "."+filepath.Base(main)+".123456789.tmp")
			if err := os.WriteFile(temp, tt.temp, tt.mode); err != nil {
				t.Fatal(err)
			}
			os.Chmod(temp, tt.mode) // past the umask
			unlock, err := s.Lock(ctx, fsKey())
			if err != nil {
				t.Fatal(err)
			}
			unlock()
			got, err := s.Load(ctx, fsKey())
			if err != nil || got == nil {
				t.Fatalf("Load = %v, %v", got, err)
			}
			sameToken(t, got, tt.want)
			if _, err := os.Stat(temp); tt.tempGone != errors.Is(err, fs.ErrNotExist) {
				t.Errorf("temporary file left: %v (want gone: %v)", err, tt.tempGone)
			}
			if m := perm(t, main); m != 0o600 {
				t.Errorf("token file mode %04o, want 0600", m)
			}
		})
	}
}

// A lock file planted as a symbolic link is not followed: the lock fails
// rather than open or create a file elsewhere.
func TestFileStoreLockDoesNotFollowSymlinks(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Unix semantics")
	}
	dir := privateDir(t)
	s := newFileStore(t, filepath.Join(dir, "tokens"), nil)
	victim := filepath.Join(dir, "victim")
	if err := os.Symlink(victim, auth.FileStoreLockPath(s, fsKey())); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	unlock, err := s.Lock(ctx, fsKey())
	if err == nil {
		unlock()
		t.Fatal("Lock followed a symbolic link")
	}
	if _, err := os.Lstat(victim); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the link's target was created: %v", err)
	}
}

// A token directory owned by another user is refused: its owner could
// read or replace the tokens whatever the mode says.
func TestFileStoreRefusesDirectoryOfAnotherUser(t *testing.T) {
	if runtime.GOOS == "windows" || os.Getuid() != 0 {
		t.Skip("needs root to give a directory to another user")
	}
	dir := filepath.Join(t.TempDir(), "tokens")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := auth.NewFileStore(auth.FileStoreConfig{Dir: dir}); !errors.Is(err, auth.ErrInvalidConfig) {
		t.Fatalf("NewFileStore = %v, want ErrInvalidConfig", err)
	}
}

// A file saved when the key held one "audience" is still found by a key
// with that single audience.
func TestStoreKeyReadsTheOldAudience(t *testing.T) {
	var k auth.StoreKey
	if err := json.Unmarshal([]byte(`{"issuer":"https://idp","client_id":"cli","scopes":["openid"],"audience":"api"}`), &k); err != nil {
		t.Fatal(err)
	}
	want := auth.StoreKey{Issuer: "https://idp", ClientID: "cli", Scopes: []string{"openid"}, Audiences: []string{"api"}}
	if !k.Equal(want) {
		t.Errorf("read %+v, want %+v", k, want)
	}
	if k.Equal(auth.StoreKey{Issuer: "https://idp", ClientID: "cli", Scopes: []string{"openid"}, Audiences: []string{"api", "other"}}) {
		t.Error("another set of audiences matches")
	}
	if k.Equal(auth.StoreKey{Issuer: "https://idp", ClientID: "cli", Scopes: []string{"openid"}, Audiences: []string{"api"}, Resources: []string{"https://r/"}}) {
		t.Error("a key with a resource matches one without")
	}
}

// The zero FileStoreConfig keeps tokens in the user's cache directory, in a
// private "authkit" directory; without any cache directory it says what to
// set.
func TestFileStoreDefaultDir(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("XDG_CACHE_HOME decides os.UserCacheDir on Linux only")
	}
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	s, err := auth.NewFileStore(auth.FileStoreConfig{})
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(cache, "authkit")
	if s.Dir() != want {
		t.Fatalf("Dir() = %q, want %q", s.Dir(), want)
	}
	if d, err := auth.DefaultTokenDir(); err != nil || d != want {
		t.Fatalf("DefaultTokenDir() = %q, %v", d, err)
	}
	fi, err := os.Stat(want)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("default directory: %v, %v", fi.Mode(), err)
	}

	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("HOME", "")
	_, err = auth.NewFileStore(auth.FileStoreConfig{})
	if !errors.Is(err, auth.ErrInvalidConfig) || !strings.Contains(err.Error(), "set FileStoreConfig.Dir") {
		t.Fatalf("without a cache directory: %v", err)
	}
}

// privateDir returns a new temporary directory of mode 0700, as a token
// directory must be (t.TempDir's are 0755 under the usual umask).
func privateDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}
