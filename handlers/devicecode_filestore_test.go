package handlers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/authtest"
)

// TestDeviceCodeFileStoreHelperProcess is the child of
// TestDeviceCodeTwoProcessesSpendRefreshTokenOnce; it does nothing when run
// on its own.
func TestDeviceCodeFileStoreHelperProcess(t *testing.T) {
	if os.Getenv("AUTHKIT_FILESTORE_CHILD") != "1" {
		t.Skip("helper process")
	}
	store, err := auth.NewFileStore(auth.FileStoreConfig{Dir: os.Getenv("AUTHKIT_DIR")})
	if err != nil {
		fmt.Println("ERR", err)
		return
	}
	h, err := NewDeviceCode(DeviceCodeConfig{OAuthConfig: OAuthConfig{
		Endpoints: Endpoints{Issuer: os.Getenv("AUTHKIT_ISSUER")}, ClientID: "cli", Store: store,
	}, Prompt: func(context.Context, DevicePrompt) error { return fmt.Errorf("no prompt in this test") }})
	if err != nil {
		fmt.Println("ERR", err)
		return
	}
	defer h.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := h.Authenticate(ctx); err != nil {
		fmt.Println("ERR", err)
		return
	}
	sum := sha256.Sum256([]byte(h.engine.Current().AccessToken.Reveal()))
	fmt.Println("OK", hex.EncodeToString(sum[:8]), h.Username())
}

func TestDeviceCodeTwoProcessesSpendRefreshTokenOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	p := newProvider(t, nil) // real time: two processes cannot share a fake clock
	dir := filepath.Join(t.TempDir(), "tokens")
	store, err := auth.NewFileStore(auth.FileStoreConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewDeviceCode(DeviceCodeConfig{OAuthConfig: OAuthConfig{Endpoints: Endpoints{Issuer: p.Issuer()}, ClientID: "cli"}})
	if err != nil {
		t.Fatal(err)
	}
	key := h.core.storeKey("")
	h.Close()
	scopes := []string{"openid", "profile", "offline_access"}
	rt := p.IssueRefreshToken("ada", "cli", scopes)
	seed := &auth.Token{AccessToken: auth.NewSecret("expired"), RefreshToken: auth.NewSecret(rt), Expiry: time.Now().Add(-time.Minute)}
	if err := store.Save(context.Background(), key, seed); err != nil {
		t.Fatal(err)
	}

	const n = 2
	outs := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(os.Args[0], "-test.run=^TestDeviceCodeFileStoreHelperProcess$", "-test.v")
			cmd.Env = append(os.Environ(), "AUTHKIT_FILESTORE_CHILD=1", "AUTHKIT_DIR="+dir, "AUTHKIT_ISSUER="+p.Issuer())
			out, _ := cmd.CombinedOutput()
			outs[i] = string(out)
		}()
	}
	wg.Wait()
	var results []string
	for _, out := range outs {
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "OK ") || strings.HasPrefix(line, "ERR ") {
				results = append(results, line)
			}
		}
	}
	if len(results) != n || results[0] != results[1] || !strings.HasPrefix(results[0], "OK ") || !strings.HasSuffix(results[0], " ada") {
		t.Fatalf("children answered %q\n%s", results, strings.Join(outs, "\n---\n"))
	}
	if got := p.GrantRequests(authtest.GrantRefreshToken); got != 1 {
		t.Errorf("%d refreshes, want 1: the refresh token was spent more than once", got)
	}
}
