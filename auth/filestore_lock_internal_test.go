package auth

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/gofrs/flock"
)

// TestFileStoreLockFollowsItsPath: a lock file is removed by the holder
// that deleted its entry (TestFileStoreLockFileGoesWithItsEntry). That is
// safe only if a process that got the lock of the removed file does not
// then believe it holds the lock while another holds the lock of the new
// file of that name. The hook strikes in that window: right after the
// store got its file lock, another holder removes the file, creates the
// new one and locks it. The store must notice and wait for that holder.
func TestFileStoreLockFollowsItsPath(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	s, err := NewFileStore(FileStoreConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	key := StoreKey{Issuer: "https://idp.example", ClientID: "cli"}
	path := s.lockPath(key)
	other := flock.New(path)
	struck := make(chan struct{})
	testHookLocked = func(p string) {
		testHookLocked = nil // once
		if err := os.Remove(p); err != nil {
			t.Error(err)
		}
		if err := other.Lock(); err != nil { // creates the new file
			t.Error(err)
		}
		close(struck)
	}
	defer func() { testHookLocked = nil }()
	got := make(chan func(), 1)
	go func() {
		unlock, err := s.Lock(context.Background(), key)
		if err != nil {
			t.Error(err)
			close(got)
			return
		}
		got <- unlock
	}()
	<-struck
	// The store retries every lockRetryDelay; give it many tries to take
	// a lock it must not take.
	select {
	case u := <-got:
		if u != nil {
			u()
		}
		t.Fatal("Lock returned while another holder held the lock of the file its path names")
	case <-time.After(50 * lockRetryDelay):
	}
	if err := other.Unlock(); err != nil {
		t.Fatal(err)
	}
	u := <-got
	if u == nil {
		t.Fatal("Lock failed")
	}
	u()
}
