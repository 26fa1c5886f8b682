package session_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/authkit-go/authkit/session"
)

// apiKeys is a minimal handler: the hub and the access manager get API keys.
type apiKeys struct{ hub http.Header }

func (apiKeys) Authenticate(context.Context) error { return nil }
func (apiKeys) Authenticated() bool                { return true }
func (apiKeys) Username() string                   { return "svc" }
func (k apiKeys) HubRequestHeaders(context.Context) (http.Header, error) {
	return k.hub, nil
}
func (k apiKeys) AccessManagerRequestHeaders(context.Context) (http.Header, error) {
	return k.hub, nil
}
func (apiKeys) MessageServiceMetadata(context.Context) (map[string]string, error) {
	return nil, nil
}

func ExampleSession_Do() {
	hub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "key id %s", r.Header.Get("X-Api-Key-Id"))
	}))
	defer hub.Close()

	h := apiKeys{hub: http.Header{"X-Api-Key-Id": {"k-42"}, "X-Api-Key": {"not-a-real-secret"}}}
	s, err := session.New(h, session.Config{HubURL: hub.URL + "/api"})
	if err != nil {
		fmt.Println(err)
		return
	}
	req, _ := http.NewRequest(http.MethodGet, hub.URL+"/api/things", nil)
	resp, err := s.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, string(body))
	// Output: 200 key id k-42
}
