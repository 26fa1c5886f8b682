// Command cli is the second persona of authkit's docs: a command-line tool
// whose user logs in once, with a device code, and whose later runs —
// separate processes — reuse and refresh that login from a token file.
//
//	go run ./examples/cli -issuer https://sso.example.com -client-id cli login
//	go run ./examples/cli -issuer https://sso.example.com -client-id cli whoami
//	go run ./examples/cli -issuer https://sso.example.com -client-id cli logout
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/handlers"
)

func main() {
	issuer := flag.String("issuer", "", "the provider's issuer URL")
	clientID := flag.String("client-id", "", "the public client registered for device login")
	dir := flag.String("store", "", "the token directory (default: the user's cache directory)")
	flag.Parse()
	if err := run(context.Background(), *issuer, *clientID, *dir, flag.Arg(0)); err != nil {
		fmt.Fprintln(os.Stderr, "cli:", err)
		if errors.Is(err, auth.ErrLoginRequired) {
			os.Exit(3)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, issuer, clientID, dir, cmd string) error {
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return err
		}
		dir = filepath.Join(cache, "authkit-example-cli")
	}
	store, err := auth.NewFileStore(auth.FileStoreConfig{Dir: dir})
	if err != nil {
		return err
	}
	h, err := handlers.NewDeviceCode(handlers.DeviceCodeConfig{OAuthConfig: handlers.OAuthConfig{
		Endpoints: handlers.Endpoints{Issuer: issuer}, ClientID: clientID, Store: store}})
	if err != nil {
		return err
	}
	defer h.Close()
	switch cmd {
	case "login": // prompts only when no stored login can be refreshed
		err = h.Authenticate(ctx)
	case "whoami": // never prompts
		if _, err = h.Token(ctx); err == nil {
			fmt.Println(h.Username())
		}
	case "logout":
		err = h.Logout(ctx)
	default:
		err = fmt.Errorf("usage: cli [flags] login|whoami|logout")
	}
	return err
}
