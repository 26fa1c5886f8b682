package authtest

import (
	"encoding/json"
	"errors"
	"net/url"
	"regexp"
	"testing"
	"time"
)

func startDevice(t *testing.T, p *Provider, extra ...string) answer {
	t.Helper()
	a := post(t, p, EndpointDeviceCode, form(append([]string{"client_id", "cli"}, extra...)...))
	if a.status != 200 {
		t.Fatalf("device authorization: %d %s", a.status, a.raw)
	}
	return a
}

func poll(t *testing.T, p *Provider, deviceCode string) answer {
	t.Helper()
	return post(t, p, EndpointToken, form("grant_type", GrantDeviceCode, "client_id", "cli", "device_code", deviceCode))
}

func TestDeviceAuthorizationResponse(t *testing.T) {
	p, _ := newTestProvider(t, func(c *ProviderConfig) {
		c.DeviceCodeLifetime = 90 * time.Second
		c.DeviceInterval = 2 * time.Second
	})
	a := startDevice(t, p, "scope", "openid")
	uc := a.str("user_code")
	if !regexp.MustCompile(`^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$`).MatchString(uc) {
		t.Errorf("user_code = %q", uc)
	}
	if a.str("device_code") == "" {
		t.Error("no device_code")
	}
	if a.str("verification_uri") != p.URL()+"/device" ||
		a.str("verification_uri_complete") != p.URL()+"/device?user_code="+url.QueryEscape(uc) {
		t.Errorf("verification URIs = %q %q", a.str("verification_uri"), a.str("verification_uri_complete"))
	}
	if a.json["expires_in"] != json.Number("90") || a.json["interval"] != json.Number("2") {
		t.Errorf("expires_in=%v interval=%v", a.json["expires_in"], a.json["interval"])
	}
	if len(a.json) != 6 {
		t.Errorf("fields = %v, want exactly 6", a.json)
	}
	if got := p.PendingUserCodes(); len(got) != 1 || got[0] != uc {
		t.Errorf("PendingUserCodes = %v", got)
	}
	// Confidential clients authenticate here too.
	a = post(t, p, EndpointDeviceCode, form("client_id", "post", "client_secret", "wrong"))
	wantError(t, a, 401, "invalid_client", descClientSecretWrong)
	a = post(t, p, EndpointDeviceCode, form("client_id", "cc-only", "client_secret", "x"))
	wantError(t, a, 400, "unauthorized_client", "")
}

func TestDeviceFlow(t *testing.T) {
	type step struct {
		advance time.Duration
		do      func(t *testing.T, p *Provider, userCode string)
		code    string // expected error; "ok" for tokens
		desc    string
	}
	approve := func(t *testing.T, p *Provider, uc string) {
		if err := p.ApproveDevice(uc, "ada"); err != nil {
			t.Fatal(err)
		}
	}
	deny := func(t *testing.T, p *Provider, uc string) {
		if err := p.DenyDevice(uc); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"approve", []step{
			{code: "authorization_pending", desc: descPending},
			{advance: 5 * time.Second, do: approve, code: "ok"},
			{advance: 5 * time.Second, code: "invalid_grant", desc: descDeviceCodeSpent},
		}},
		{"deny", []step{
			{do: deny, code: "access_denied", desc: descAuthorizationDenied},
			{advance: 5 * time.Second, code: "access_denied"},
		}},
		{"expired", []step{
			{code: "authorization_pending"},
			{advance: 10 * time.Minute, code: "expired_token", desc: descDeviceCodeExpired},
		}},
		{"approved too late", []step{
			{advance: 10 * time.Minute, do: approve, code: "expired_token"},
		}},
		{"slow_down grows the interval by 5 s", []step{
			{code: "authorization_pending"},
			{advance: 4 * time.Second, code: "slow_down", desc: descSlowDown}, // needs 10 s now
			{advance: 9 * time.Second, code: "slow_down"},                     // needs 15 s now
			{advance: 15 * time.Second, code: "authorization_pending"},
			{advance: 15 * time.Second, do: approve, code: "ok"},
		}},
		{"first poll is not rate limited", []step{
			{do: approve, code: "ok"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, clock := newTestProvider(t, nil)
			a := startDevice(t, p, "scope", "openid offline_access")
			dc, uc := a.str("device_code"), a.str("user_code")
			for i, s := range tt.steps {
				clock.Advance(s.advance)
				if s.do != nil {
					s.do(t, p, uc)
				}
				a := poll(t, p, dc)
				if s.code == "ok" {
					wantTokens(t, a, true, true)
					if c := claims(t, p, clock, a.str("id_token")); c["sub"] != "ada" || c["aud"] != "cli" {
						t.Errorf("id token claims = %v", c)
					}
					continue
				}
				if a.str("error") != s.code || (s.desc != "" && a.str("error_description") != s.desc) || a.status != 400 {
					t.Fatalf("step %d: got %d %s, want %s %q", i, a.status, a.raw, s.code, s.desc)
				}
			}
			if n := p.GrantRequests(GrantDeviceCode); n != len(tt.steps) {
				t.Errorf("device polls counted = %d, want %d", n, len(tt.steps))
			}
		})
	}
}

func TestDeviceInterval(t *testing.T) {
	p, clock := newTestProvider(t, nil)
	a := startDevice(t, p)
	uc := a.str("user_code")
	poll(t, p, a.str("device_code"))
	clock.Advance(time.Second)
	poll(t, p, a.str("device_code"))
	if d, err := p.DeviceInterval(uc); err != nil || d != 10*time.Second {
		t.Errorf("DeviceInterval = %v, %v; want 10s", d, err)
	}
}

func TestDeviceDecisions(t *testing.T) {
	p, _ := newTestProvider(t, nil)
	uc := startDevice(t, p).str("user_code")
	lower := []byte(uc)
	for i := range lower {
		if lower[i] >= 'A' && lower[i] <= 'Z' {
			lower[i] += 'a' - 'A'
		}
	}
	if err := p.ApproveDevice("NOPE-NOPE", "ada"); !errors.Is(err, ErrUnknownUserCode) {
		t.Errorf("unknown code: %v", err)
	}
	if err := p.ApproveDevice(uc, "eve"); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("unknown user: %v", err)
	}
	// Hyphen and case do not matter.
	if err := p.ApproveDevice(string(lower[:4])+string(lower[5:]), "ada"); err != nil {
		t.Errorf("approve: %v", err)
	}
	if err := p.DenyDevice(uc); !errors.Is(err, ErrDeviceDecided) {
		t.Errorf("deny after approve: %v", err)
	}
	if len(p.PendingUserCodes()) != 0 {
		t.Error("approved code still pending")
	}
}

func TestDeviceWrongClientOrCode(t *testing.T) {
	p, _ := newTestProvider(t, nil)
	dc := startDevice(t, p).str("device_code")
	a := post(t, p, EndpointToken, form("grant_type", GrantDeviceCode, "client_id", "both", "client_secret", "b0th", "device_code", dc))
	wantError(t, a, 400, "invalid_grant", descDeviceCodeInvalid)
	wantError(t, poll(t, p, "unknown"), 400, "invalid_grant", descDeviceCodeInvalid)
	wantError(t, poll(t, p, ""), 400, "invalid_request", "missing device_code")
}

func TestOnDeviceAuthorization(t *testing.T) {
	p, _ := newTestProvider(t, nil)
	var got string
	p.OnDeviceAuthorization(func(uc string) {
		got = uc
		if err := p.ApproveDevice(uc, "ada"); err != nil {
			t.Error(err)
		}
	})
	a := startDevice(t, p)
	if got != a.str("user_code") {
		t.Fatalf("hook saw %q, answer has %q", got, a.str("user_code"))
	}
	wantTokens(t, poll(t, p, a.str("device_code")), false, false)
}

func TestAutoApprove(t *testing.T) {
	p, clock := newTestProvider(t, nil)
	p.AutoApprove("ada", 12*time.Second)
	dc := startDevice(t, p, "scope", "offline_access").str("device_code")
	p.AutoApprove("", 0) // codes issued earlier keep their auto-approval
	steps := []struct {
		advance time.Duration
		code    string
	}{
		{0, "authorization_pending"},
		{6 * time.Second, "authorization_pending"},
		{5 * time.Second, "authorization_pending"}, // 11 s
		{5 * time.Second, "ok"},                    // 16 s
	}
	for i, s := range steps {
		clock.Advance(s.advance)
		a := poll(t, p, dc)
		if s.code == "ok" {
			wantTokens(t, a, true, false)
			if c := claims(t, p, clock, a.str("access_token")); c["sub"] != "ada" {
				t.Errorf("sub = %v", c["sub"])
			}
			continue
		}
		if a.str("error") != s.code {
			t.Fatalf("step %d: %s", i, a.raw)
		}
	}
	// Turned off: a new code stays pending.
	dc = startDevice(t, p).str("device_code")
	clock.Advance(time.Hour - time.Minute)
	if a := poll(t, p, dc); a.str("error") != "expired_token" {
		t.Errorf("got %s", a.raw)
	}
}

func TestForceSlowDown(t *testing.T) {
	p, clock := newTestProvider(t, nil)
	a := startDevice(t, p)
	dc, uc := a.str("device_code"), a.str("user_code")
	p.ForceSlowDown(2)
	wantError(t, poll(t, p, dc), 400, "slow_down", descSlowDown)
	clock.Advance(10 * time.Second)
	wantError(t, poll(t, p, dc), 400, "slow_down", descSlowDown)
	if d, _ := p.DeviceInterval(uc); d != 15*time.Second {
		t.Errorf("interval = %v, want 15s", d)
	}
	clock.Advance(15 * time.Second)
	wantError(t, poll(t, p, dc), 400, "authorization_pending", "")
}
