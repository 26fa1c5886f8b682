package auth_test

import (
	"context"
	"path/filepath"
	"testing"
)

func lockFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.lock"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestFileStoreLockFileGoesWithItsEntry: a lock file stays while its entry
// does and goes with it (they piled up, empty, in the token directory):
// released with no entry — after a logout, or a login that saved nothing —
// the lock file is removed.
func TestFileStoreLockFileGoesWithItsEntry(t *testing.T) {
	dir := privateDir(t)
	s := newFileStore(t, dir, nil)
	ctx := context.Background()
	key := fsKey()

	unlock, err := s.Lock(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Save(ctx, key, fsToken()); err != nil {
		t.Fatal(err)
	}
	unlock()
	if n := len(lockFiles(t, dir)); n != 1 {
		t.Fatalf("%d lock files beside a saved entry, want 1", n)
	}

	unlock, err = s.Lock(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	unlock()
	if m := lockFiles(t, dir); len(m) != 0 {
		t.Errorf("after the entry was deleted under its lock: %q left", m)
	}

	unlock, err = s.Lock(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	unlock()
	if m := lockFiles(t, dir); len(m) != 0 {
		t.Errorf("after a lock that saved nothing: %q left", m)
	}
}
