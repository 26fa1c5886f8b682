package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/gofrs/flock"
)

// maxTokenFileSize bounds what Load reads: a token file is a few KiB, a
// larger file is not one of ours.
const maxTokenFileSize = 1 << 20

// lockRetryDelay is how often Lock retries a file lock held by another
// process.
const lockRetryDelay = 10 * time.Millisecond

// FileStoreConfig configures a [FileStore]. The zero value is ready to use:
// the token files go to [DefaultTokenDir].
type FileStoreConfig struct {
	// Dir is the directory of the token files; empty means
	// [DefaultTokenDir]. It is created with mode 0700 if missing (with its
	// missing parents). An existing directory that group or others may
	// access is refused with [ErrInvalidConfig]; its mode is never changed
	// (TestFileStoreRefusesAnOpenExistingDirectory).
	Dir string
	// Logger receives a record for every file that is ignored (corrupt,
	// truncated, unreadable, too permissive, another version, another
	// configuration). Records never carry token contents. Nil means silent.
	Logger *slog.Logger
	// Clock stamps the "saved_at" field; nil means SystemClock().
	Clock Clock
}

// FileStore is a [Store] and a [Locker] that keeps one JSON file per login
// (issuer, client and user: [StoreKey.Identity]) in a private directory, so
// that a command-line login survives the process and several processes
// share one rotating refresh token.
//
// Files are written atomically (a temporary file in the same directory,
// fsync, rename, fsync of the directory) with mode 0600. A file that cannot
// be used — corrupt, truncated, unreadable, readable by others, of an
// unknown version, or saved for other scopes or another audience — is
// reported through the logger and treated as absent: Load returns (nil,
// nil) and the engine logs in again.
//
// Lock takes an exclusive lock on a sibling "<name>.lock" file (flock(2) on
// Unix, LockFileEx on Windows) and, inside the process, a mutex per lock file,
// because file locks do not reliably exclude two goroutines of one process
// (POSIX fcntl locks, which gofrs/flock uses on some systems, are held per
// process). A lock file is removed by the holder that leaves no entry
// behind (a logout, a login that saved nothing), while it holds it; a
// process that then gets the removed file's lock sees that the path names
// another file and locks that one, so that two processes never hold two
// files of one name (TestFileStoreLockFileGoesWithItsEntry,
// TestFileStoreLockFollowsItsPath). (A process of an authkit release
// before this rule does not make that check: do not share a token
// directory between it and this one.)
//
// A FileStore is safe for concurrent use, and several FileStores on one
// directory, in one process or many, exclude each other.
type FileStore struct {
	dir   string
	log   *slog.Logger
	clock Clock

	// writeHook, when set (by tests), replaces the write of the temporary
	// file's contents.
	writeHook func(f *os.File, data []byte) (int, error)
}

// DefaultTokenDir is where a [FileStore] keeps token files unless told
// otherwise, and where the authkit command keeps its logins:
// os.UserCacheDir()/authkit ($XDG_CACHE_HOME/authkit or ~/.cache/authkit on
// Linux, ~/Library/Caches/authkit on macOS, %LocalAppData%\authkit on
// Windows). Programs sharing it share their logins.
func DefaultTokenDir() (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", configError("no default token directory (%v); set FileStoreConfig.Dir", err)
	}
	return filepath.Join(cache, "authkit"), nil
}

// NewFileStore validates cfg, creates the directory if missing, and returns
// the store.
func NewFileStore(cfg FileStoreConfig) (*FileStore, error) {
	if cfg.Dir == "" {
		d, err := DefaultTokenDir()
		if err != nil {
			return nil, err
		}
		cfg.Dir = d
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, configError("token directory %q: %v", cfg.Dir, err)
	}
	s := &FileStore{dir: dir, log: cfg.Logger, clock: cfg.Clock}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.clock == nil {
		s.clock = SystemClock()
	}
	created, err := makeDir(dir)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("auth: token directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, configError("token directory %q is not a directory", dir)
	}
	if err := checkOwner(dir, fi); err != nil {
		return nil, err
	}
	if runtime.GOOS != "windows" && !created && fi.Mode().Perm()&0o077 != 0 {
		// Never change the mode of a directory the store did not create:
		// it may be shared (".", a config directory) on purpose.
		return nil, configError("token directory %q has mode %04o: group or others may access it; run `chmod 700 %s` or choose another directory",
			dir, fi.Mode().Perm(), dir)
	}
	return s, nil
}

// makeDir creates dir, and its missing parents, with mode 0700 and reports
// whether it created dir itself.
func makeDir(dir string) (created bool, err error) {
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return false, fmt.Errorf("auth: create token directory: %w", err)
	}
	switch err := os.Mkdir(dir, 0o700); {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrExist):
		return false, nil
	default:
		return false, fmt.Errorf("auth: create token directory: %w", err)
	}
}

// Dir returns the absolute path of the store's directory.
func (s *FileStore) Dir() string { return s.dir }

// name returns the base name, without extension, of key's files.
func (s *FileStore) name(key StoreKey) string { return key.Name() }

func (s *FileStore) path(key StoreKey) string {
	return filepath.Join(s.dir, s.name(key)+".json")
}

func (s *FileStore) lockPath(key StoreKey) string {
	return filepath.Join(s.dir, s.name(key)+".lock")
}

// Load returns the token saved for key, or (nil, nil) when none is usable.
// Only a done ctx is returned as an error; every problem with the file is
// logged and treated as absence.
func (s *FileStore) Load(ctx context.Context, key StoreKey) (*Token, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	path := s.path(key)
	data, err := s.read(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		s.log.Warn("auth: token file ignored; the next login replaces it", "file", path, "reason", err.Error())
		return nil, nil
	}
	tok, level, reason := decodeEntry(data, key)
	if tok == nil {
		s.log.Log(ctx, level, "auth: token file ignored; the next login replaces it", "file", path, "reason", reason)
		return nil, nil
	}
	return tok, nil
}

// read returns the contents of the regular, private file at path. Its
// errors never quote the file's contents.
func (s *FileStore) read(path string) ([]byte, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (mode %v)", fi.Mode())
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot open: %w", err)
	}
	defer f.Close()
	fi, err = f.Stat()
	if err != nil {
		return nil, fmt.Errorf("cannot stat: %w", err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("mode %04o lets others read it; expected 0600", fi.Mode().Perm())
	}
	data, err := io.ReadAll(io.LimitReader(f, maxTokenFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read: %w", err)
	}
	if len(data) > maxTokenFileSize {
		return nil, fmt.Errorf("larger than %d bytes", maxTokenFileSize)
	}
	return data, nil
}

// decodeEntry parses a token file. When the entry cannot be used it returns
// a nil token, the level to log at and a reason that quotes nothing of the
// file.
func decodeEntry(data []byte, want StoreKey) (*Token, slog.Level, string) {
	tok, err := DecodeStoreEntry(data, want)
	switch {
	case errors.Is(err, ErrOtherConfiguration):
		return nil, slog.LevelDebug, strings.TrimPrefix(err.Error(), "auth: ")
	case err != nil: // "empty entry" is an "empty file" here
		return nil, slog.LevelWarn, strings.Replace(strings.TrimPrefix(err.Error(), "auth: "), "entry", "file", 1)
	}
	return tok, slog.LevelInfo, ""
}

// describeJSONError says what is wrong with a JSON document without quoting
// it: encoding/json's messages may contain a value (time.Time's parse error
// quotes the string), and a value may be a secret.
func describeJSONError(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case err == nil:
		return "missing"
	case errors.As(err, &syn) && syn.Error() == "unexpected end of JSON input":
		return "truncated JSON"
	case errors.As(err, &syn):
		return fmt.Sprintf("invalid JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %q has the wrong type", typ.Field)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated JSON"
	default:
		return "malformed value"
	}
}

// Save writes tok for key atomically: readers see the old file or the new
// one, never a mix, and a failed write leaves the old file intact.
func (s *FileStore) Save(ctx context.Context, key StoreKey, tok *Token) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if tok == nil {
		return fmt.Errorf("%w: nil token", ErrMalformedToken)
	}
	entry, err := EncodeStoreEntry(key, tok, s.clock.Now())
	if err != nil {
		return err
	}
	var data bytes.Buffer
	if err := json.Indent(&data, entry, "", "  "); err != nil {
		return fmt.Errorf("auth: encode token file: %w", err)
	}
	if err := s.writeAtomic(s.path(key), data.Bytes()); err != nil {
		return fmt.Errorf("auth: save token: %w", err)
	}
	return nil
}

func (s *FileStore) writeAtomic(path string, data []byte) (err error) {
	f, err := os.CreateTemp(s.dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil && runtime.GOOS != "windows" {
		return err
	}
	write := s.writeHook
	if write == nil {
		write = (*os.File).Write
	}
	if _, err := write(f, data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	s.syncDir()
	return nil
}

// syncDir makes a rename or removal durable. Failing to is logged, not
// returned: the file is already in place, and some file systems cannot sync
// a directory.
func (s *FileStore) syncDir() {
	if runtime.GOOS == "windows" {
		return
	}
	d, err := os.Open(s.dir)
	if err == nil {
		err = d.Sync()
		_ = d.Close()
	}
	if err != nil {
		s.log.Debug("auth: token directory not synced", "dir", s.dir, "error", err)
	}
}

// Delete removes the token file of key's identity, whatever scopes it was
// saved with: the logout. A missing file is not an error.
func (s *FileStore) Delete(ctx context.Context, key StoreKey) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.Remove(s.path(key)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("auth: delete token: %w", err)
	}
	s.syncDir()
	return nil
}

// recoverLocked finishes the save of a process that was killed between
// writing its temporary file and renaming it: a complete temporary file of
// key's identity that is newer than the token file replaces it, and every
// other temporary file of that identity is deleted. It runs under key's
// lock, which every writer holds, so no live writer can own one of them.
// A kill before the temporary file was complete leaves the previous entry
// — with the killed process's spend record, so that its refresh token is
// not presented again (see auth.ErrLoginLost; TestRotationSurvivesKill9 in
// handlers kills processes at that moment on purpose).
func (s *FileStore) recoverLocked(key StoreKey) {
	path := s.path(key)
	temps, _ := filepath.Glob(filepath.Join(s.dir, "."+filepath.Base(path)+".*.tmp"))
	if len(temps) == 0 {
		return
	}
	newest, newestAt := "", time.Time{}
	if data, err := s.read(path); err == nil {
		newestAt, _ = savedAt(data, key)
	}
	for _, t := range temps {
		data, err := s.read(t)
		if err != nil {
			continue
		}
		if at, ok := savedAt(data, key); ok && at.After(newestAt) {
			newest, newestAt = t, at
		}
	}
	for _, t := range temps {
		if t != newest {
			_ = os.Remove(t)
		}
	}
	if newest == "" {
		s.log.Debug("auth: removed temporary token files of an interrupted save", "count", len(temps))
		return
	}
	if err := os.Rename(newest, path); err != nil {
		s.log.Warn("auth: an interrupted save could not be completed", "file", path, "error", err)
		return
	}
	s.syncDir()
	s.log.Info("auth: completed a token save that a stopped process had left unfinished", "file", path)
}

// savedAt returns the saved_at of a complete token file of key's identity.
func savedAt(data []byte, key StoreKey) (time.Time, bool) {
	var e storeEntry
	var k StoreKey
	if json.Unmarshal(data, &e) != nil || e.Version != storeEntryVersion ||
		json.Unmarshal(e.Key, &k) != nil || k.Identity() != key.Identity() || len(e.Token) == 0 {
		return time.Time{}, false
	}
	if tok, err := unmarshalStored(e.Token); err != nil || tok == nil {
		return time.Time{}, false
	}
	return e.SavedAt, true
}

// testHookLocked, when set, runs right after Lock got a file lock, before
// it checks that the file is still the one the path names.
var testHookLocked func(path string)

// isPath reports whether the file fl holds is the one path names now:
// false when the path is gone or names another file; an error when it
// cannot be told (then waiting again would not help).
func isPath(fl *flock.Flock, path string) (bool, error) {
	held, err := fl.Stat()
	if err != nil {
		return false, err
	}
	cur, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, err
	case cur.Mode()&fs.ModeSymlink != 0:
		return false, errors.New("the lock file is a symbolic link")
	}
	return os.SameFile(held, cur), nil
}

// processLocks holds one semaphore per lock file path, shared by every
// FileStore of the process. It is process-wide on purpose: it stands in for
// the file lock between goroutines of this process, which the operating
// system does not always provide, and two FileStores on one directory must
// exclude each other too.
var processLocks sync.Map // lock file path -> chan struct{} (capacity 1)

// Lock takes the lock of key's identity, first within the process and then
// across processes, waiting as long as ctx allows. The returned function
// releases both; call it exactly once.
func (s *FileStore) Lock(ctx context.Context, key StoreKey) (func(), error) {
	path := s.lockPath(key)
	v, _ := processLocks.LoadOrStore(path, make(chan struct{}, 1))
	sem := v.(chan struct{})
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var fl *flock.Flock
	for {
		if err := ctx.Err(); err != nil {
			<-sem
			return nil, err
		}
		fl = flock.New(path, flock.SetPermissions(0o600), flock.SetFlag(lockFlag))
		ok, err := fl.TryLockContext(ctx, lockRetryDelay)
		if err != nil || !ok {
			<-sem
			if err == nil {
				err = errors.New("file lock not acquired")
			}
			return nil, fmt.Errorf("auth: lock %s: %w", path, err)
		}
		if testHookLocked != nil {
			testHookLocked(path)
		}
		same, err := isPath(fl, path)
		if err != nil {
			fl.Unlock()
			<-sem
			return nil, fmt.Errorf("auth: lock %s: %w", path, err)
		}
		if same {
			break
		}
		// The holder we waited for removed the file (it deleted the
		// entry): the lock is the new file's of that name.
		fl.Unlock()
	}
	s.recoverLocked(key)
	var once sync.Once
	return func() {
		once.Do(func() {
			if _, err := os.Lstat(s.path(key)); errors.Is(err, fs.ErrNotExist) {
				// No entry: the lock file goes too, while it is held;
				// whoever waits on it sees that and locks the new one.
				// (Windows refuses to remove an open file: it stays.)
				os.Remove(path)
			}
			if err := fl.Unlock(); err != nil {
				s.log.Warn("auth: token lock not released cleanly", "file", path, "error", err)
			}
			<-sem
		})
	}, nil
}
