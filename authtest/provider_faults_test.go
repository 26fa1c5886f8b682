package authtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestFailNext(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		oauthError string
		wantCT     string
		wantBody   string
	}{
		{"oauth error", 400, "invalid_grant", "application/json", `{"error":"invalid_grant","error_description":"injected failure"}`},
		{"server error", 503, "temporarily_unavailable", "application/json", `{"error":"temporarily_unavailable","error_description":"injected failure"}`},
		{"plain text", 502, "", "text/plain; charset=utf-8", "injected failure\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _ := newTestProvider(t, nil)
			p.FailNext(2, tt.status, tt.oauthError)
			cc := form("grant_type", "client_credentials", "client_id", "cli")
			for i := range 2 {
				a := post(t, p, EndpointToken, cc)
				if a.status != tt.status || a.raw != tt.wantBody || a.header.Get("Content-Type") != tt.wantCT {
					t.Fatalf("request %d: %d %q %q", i, a.status, a.header.Get("Content-Type"), a.raw)
				}
			}
			wantTokens(t, post(t, p, EndpointToken, cc), false, false)
			if n := p.GrantRequests(GrantClientCredentials); n != 3 {
				t.Errorf("counted %d, want 3", n)
			}
		})
	}
}

func TestFailNextAtDeviceEndpoint(t *testing.T) {
	p, _ := newTestProvider(t, nil)
	p.FailNextAt(EndpointDeviceCode, 1, 500, "server_error")
	wantError(t, post(t, p, EndpointDeviceCode, form("client_id", "cli")), 500, "server_error", "injected failure")
	startDevice(t, p)
	// The token endpoint was not affected.
	if p.Requests(EndpointToken) != 0 || p.Requests(EndpointDeviceCode) != 2 {
		t.Errorf("counts = %+v", p.Counts())
	}
}

func TestMalformNext(t *testing.T) {
	p, _ := newTestProvider(t, nil)
	p.MalformNext(1, `<html>oops</html>`, "text/html")
	p.MalformNextAt(EndpointKeys, 1, `{"keys":`, "application/json")
	cc := form("grant_type", "client_credentials", "client_id", "cli")
	a := post(t, p, EndpointToken, cc)
	if a.status != 200 || a.raw != "<html>oops</html>" || a.header.Get("Content-Type") != "text/html" {
		t.Fatalf("got %d %q %q", a.status, a.header.Get("Content-Type"), a.raw)
	}
	req, _ := http.NewRequest(http.MethodGet, p.JWKSURL(), nil)
	resp, err := p.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ContentLength != int64(len(`{"keys":`)) {
		t.Errorf("keys body length = %d", resp.ContentLength)
	}
	wantTokens(t, post(t, p, EndpointToken, cc), false, false)
}

func TestOmitRefreshToken(t *testing.T) {
	p, _ := newTestProvider(t, nil)
	rt := p.IssueRefreshToken("ada", "cli", []string{"offline_access"})
	p.OmitRefreshToken(true)
	for range 2 { // the presented token stays valid: no rotation
		wantTokens(t, post(t, p, EndpointToken, form(refreshForm(rt)...)), false, false)
	}
	wantTokens(t, post(t, p, EndpointToken, form("grant_type", "password", "client_id", "cli", "username", "ada",
		"password", "lovelace", "scope", "offline_access")), false, false)
	p.OmitRefreshToken(false)
	wantTokens(t, post(t, p, EndpointToken, form(refreshForm(rt)...)), true, false)
}

func TestSetLatencyHonoursCancellation(t *testing.T) {
	p, _ := newTestProvider(t, nil)
	p.SetLatency(time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.DiscoveryURL(), nil)
	errc := make(chan error, 1)
	go func() {
		resp, err := p.Client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	// Wait until the request is being held, then cancel it.
	for p.Requests(EndpointDiscovery) == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	p.SetLatency(0)
	if a := get(t, p, EndpointDiscovery); a.status != 200 {
		t.Errorf("after SetLatency(0): %d", a.status)
	}
}

func TestSetLatencyDelays(t *testing.T) {
	p, _ := newTestProvider(t, nil)
	p.SetLatency(time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.TokenURL(),
		strings.NewReader("grant_type=client_credentials&client_id=cli"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	_, err := p.Client().Do(req)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline error", err)
	}
}

func TestCountsAndLastRequest(t *testing.T) {
	p, _ := newTestProvider(t, nil)
	get(t, p, EndpointDiscovery)
	get(t, p, EndpointKeys)
	get(t, p, EndpointKeys)
	post(t, p, EndpointToken, form("grant_type", "client_credentials", "client_id", "post", "client_secret", "p0st", "scope", "a"))
	post(t, p, EndpointToken, form("grant_type", "password", "client_id", "cli", "username", "ada", "password", "lovelace"))
	post(t, p, EndpointToken, form("client_id", "cli"))
	want := Counts{
		Endpoints: map[string]int{EndpointDiscovery: 1, EndpointKeys: 2, EndpointToken: 3},
		Grants:    map[string]int{GrantClientCredentials: 1, GrantPassword: 1, "": 1},
	}
	if got := p.Counts(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Counts = %v, want %v", got, want)
	}
	if p.LastRequest(EndpointRevoke) != nil {
		t.Error("LastRequest of an endpoint never called is not nil")
	}
	post(t, p, EndpointToken, form("grant_type", "client_credentials", "client_id", "post", "client_secret", "p0st", "scope", "a"))
	rec := p.LastRequest(EndpointToken)
	if rec.Method != "POST" || rec.AuthMethod != AuthMethodPost || rec.ClientID != "post" ||
		rec.Form.Get("client_secret") != "p0st" || rec.Form.Get("scope") != "a" ||
		rec.ContentType != "application/x-www-form-urlencoded" {
		t.Errorf("LastRequest = %+v", *rec)
	}
	// Printing never shows values.
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("req", "r", rec)
	for _, s := range []string{rec.String(), fmt.Sprint(rec), fmt.Sprintf("%+v", *rec), fmt.Sprintf("%#v", rec), fmt.Sprintf("%#v", *rec), logged.String()} {
		if strings.Contains(s, "p0st") || !strings.Contains(s, "client_secret") {
			t.Errorf("printed as %q", s)
		}
	}
	// The copy is the caller's.
	rec.Form.Set("scope", "changed")
	if p.LastRequest(EndpointToken).Form.Get("scope") != "a" {
		t.Error("LastRequest shares its form")
	}
	p.ResetCounts()
	if p.Requests(EndpointToken) != 0 || p.LastRequest(EndpointToken) != nil {
		t.Error("ResetCounts kept state")
	}
}

func TestConcurrentUse(t *testing.T) {
	p, clock := newTestProvider(t, nil)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			switch i % 4 {
			case 0:
				post(t, p, EndpointToken, form("grant_type", "client_credentials", "client_id", "cli"))
			case 1:
				a := startDevice(t, p)
				p.ApproveDevice(a.str("user_code"), "ada")
				poll(t, p, a.str("device_code"))
			case 2:
				p.FailNext(1, 500, "server_error")
				p.Counts()
			case 3:
				clock.Advance(time.Second)
				p.RevokeSession("ada")
			}
		})
	}
	wg.Wait()
	if n := p.Requests(EndpointToken); n != 4 {
		t.Errorf("token requests = %d, want 4", n)
	}
}

func TestCloseReleasesDelayedRequests(t *testing.T) {
	p, _ := newTestProvider(t, nil)
	p.SetLatency(time.Hour)
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := p.Client().Get(p.DiscoveryURL())
		if err == nil {
			resp.Body.Close()
		}
	}()
	for p.Requests(EndpointDiscovery) == 0 {
		time.Sleep(time.Millisecond)
	}
	p.Close() // must not wait an hour
	<-done
}
