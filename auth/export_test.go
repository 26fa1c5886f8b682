package auth

import "os"

// SetFileStoreWriteHook replaces the write of a FileStore's temporary file,
// so that tests can make a save fail half-way.
func SetFileStoreWriteHook(s *FileStore, h func(f *os.File, data []byte) (int, error)) {
	s.writeHook = h
}

// FileStorePath returns the token file of key.
func FileStorePath(s *FileStore, key StoreKey) string { return s.path(key) }

// FileStoreLockPath returns the lock file of key.
func FileStoreLockPath(s *FileStore, key StoreKey) string { return s.lockPath(key) }

// WaitFetches waits until no fetch of e runs in the background. No new
// fetch may start meanwhile (sync.WaitGroup's rule).
func WaitFetches(e *Engine) { e.wg.Wait() }
