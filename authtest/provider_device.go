package authtest

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// deviceAuthorizationResponse is the JSON answer of the device authorization
// endpoint (https://www.rfc-editor.org/rfc/rfc8628#section-3.2).
type deviceAuthorizationResponse struct {
	// DeviceCode is "device_code".
	DeviceCode string `json:"device_code"`
	// UserCode is "user_code", e.g. "BCDF-GHJK".
	UserCode string `json:"user_code"`
	// VerificationURI is "verification_uri".
	VerificationURI string `json:"verification_uri"`
	// VerificationURIComplete is "verification_uri_complete".
	VerificationURIComplete string `json:"verification_uri_complete"`
	// ExpiresIn is "expires_in" in seconds.
	ExpiresIn int64 `json:"expires_in"`
	// Interval is "interval" in seconds.
	Interval int64 `json:"interval"`
}

type deviceState int

const (
	devicePending deviceState = iota
	deviceApproved
	deviceDenied
	deviceSpent
)

type deviceGrant struct {
	deviceCode string
	userCode   string
	clientID   string
	scope      string
	audience   string
	expires    time.Time
	interval   time.Duration
	lastPoll   time.Time // zero until the first poll
	state      deviceState
	username   string
	autoUser   string
	autoAt     time.Time
}

type autoApproval struct {
	username string
	after    time.Duration
}

// Errors of ApproveDevice and DenyDevice.
var (
	// ErrUnknownUserCode means no device code carries the user code.
	ErrUnknownUserCode = errors.New("authtest: unknown user code")
	// ErrDeviceDecided means the device code was already approved, denied or used.
	ErrDeviceDecided = errors.New("authtest: device code already approved, denied or used")
	// ErrUnknownUser means the username is not one of ProviderConfig.Users.
	ErrUnknownUser = errors.New("authtest: unknown user")
)

// OnDeviceAuthorization sets a hook called with the user code each time the
// device authorization endpoint issues a code, before the answer is sent, on
// the request's goroutine; it may call ApproveDevice. Nil removes it.
func (p *Provider) OnDeviceAuthorization(f func(userCode string)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.onDevice = f
}

// AutoApprove makes every device code issued from now on approve itself for
// username once after has passed on the provider's clock (ProviderConfig.Clock:
// real time with the system clock, fake time with [NewClock]). The approval
// is checked when the client polls, so no timer runs. An empty username turns
// it off.
func (p *Provider) AutoApprove(username string, after time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if username == "" {
		p.auto = nil
		return
	}
	p.auto = &autoApproval{username: username, after: after}
}

// ApproveDevice approves the device code carrying userCode (hyphen and case
// ignored) for username; the client's next poll gets tokens.
func (p *Provider) ApproveDevice(userCode, username string) error {
	return p.decide(userCode, username, deviceApproved)
}

// DenyDevice denies the device code carrying userCode; the client's next poll
// gets access_denied.
func (p *Provider) DenyDevice(userCode string) error {
	return p.decide(userCode, "", deviceDenied)
}

func (p *Provider) decide(userCode, username string, to deviceState) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	g, ok := p.userCode[normalizeUserCode(userCode)]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownUserCode, userCode)
	}
	if to == deviceApproved {
		if _, ok := p.users[username]; !ok {
			return fmt.Errorf("%w %q", ErrUnknownUser, username)
		}
	}
	if g.state != devicePending {
		return ErrDeviceDecided
	}
	g.state = to
	g.username = username
	return nil
}

// PendingUserCodes returns the user codes still awaiting a decision.
func (p *Provider) PendingUserCodes() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, g := range p.devices {
		if g.state == devicePending {
			out = append(out, g.userCode)
		}
	}
	return out
}

func normalizeUserCode(s string) string {
	return strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(s))
}

// userCodeAlphabet has no vowels and no look-alikes
// (https://www.rfc-editor.org/rfc/rfc8628#section-6.1).
const userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"

func newUserCode() string {
	b := make([]byte, 8)
	rand.Read(b)
	for i := range b {
		b[i] = userCodeAlphabet[int(b[i])%len(userCodeAlphabet)]
	}
	return string(b[:4]) + "-" + string(b[4:])
}

func (p *Provider) serveDeviceCode(w http.ResponseWriter, r *http.Request) {
	c, ok := p.clientPost(w, r)
	if !ok {
		return
	}
	if c.Grants != nil && !slices.Contains(c.Grants, GrantDeviceCode) {
		badRequest("unauthorized_client", "the client may not use the device flow").write(w)
		return
	}
	now := p.now()
	g := &deviceGrant{
		deviceCode: randomString(32),
		clientID:   c.ID,
		scope:      strings.Join(strings.Fields(r.PostForm.Get("scope")), " "),
		audience:   p.audience(r, c.ID),
		expires:    now.Add(p.cfg.DeviceCodeLifetime),
		interval:   p.cfg.DeviceInterval,
	}
	p.mu.Lock()
	for {
		g.userCode = newUserCode()
		if _, taken := p.userCode[normalizeUserCode(g.userCode)]; !taken {
			break
		}
	}
	p.devices[g.deviceCode] = g
	p.userCode[normalizeUserCode(g.userCode)] = g
	if p.auto != nil {
		g.autoUser = p.auto.username
		g.autoAt = now.Add(p.auto.after)
	}
	hook := p.onDevice
	p.mu.Unlock()
	if hook != nil {
		hook(g.userCode)
	}
	writeJSON(w, http.StatusOK, deviceAuthorizationResponse{
		DeviceCode:              g.deviceCode,
		UserCode:                g.userCode,
		VerificationURI:         p.VerificationURL(),
		VerificationURIComplete: p.VerificationURL() + "?user_code=" + url.QueryEscape(g.userCode),
		ExpiresIn:               seconds(p.cfg.DeviceCodeLifetime),
		Interval:                seconds(g.interval),
	})
}

// deviceGrant answers a poll (https://www.rfc-editor.org/rfc/rfc8628#section-3.5).
// A poll sooner than the interval after the previous poll answers slow_down
// and grows the interval by 5 s; the first poll is not rate limited.
func (p *Provider) deviceGrant(r *http.Request, c Client) (*tokenResponse, *oauthErr) {
	code := r.PostForm.Get("device_code")
	if code == "" {
		return nil, badRequest("invalid_request", "missing device_code")
	}
	now := p.now()
	p.mu.Lock()
	g, ok := p.devices[code]
	var e *oauthErr
	switch {
	case !ok || g.clientID != c.ID:
		e = invalidGrant(descDeviceCodeInvalid)
	case g.state == deviceSpent:
		e = invalidGrant(descDeviceCodeSpent)
	case !now.Before(g.expires):
		e = badRequest("expired_token", descDeviceCodeExpired)
	case p.faults.slowDowns > 0:
		p.faults.slowDowns--
		e = p.slowDownLocked(g, now)
	case !g.lastPoll.IsZero() && now.Sub(g.lastPoll) < g.interval:
		e = p.slowDownLocked(g, now)
	}
	if e != nil {
		p.mu.Unlock()
		return nil, e
	}
	g.lastPoll = now
	if g.state == devicePending && g.autoUser != "" && !now.Before(g.autoAt) {
		g.state, g.username = deviceApproved, g.autoUser
	}
	switch g.state {
	case deviceDenied:
		p.mu.Unlock()
		return nil, badRequest("access_denied", descAuthorizationDenied)
	case devicePending:
		p.mu.Unlock()
		return nil, badRequest("authorization_pending", descPending)
	}
	g.state = deviceSpent
	username, scope, aud := g.username, g.scope, g.audience
	p.mu.Unlock()
	return p.login(username, c.ID, scope, aud), nil
}

func (p *Provider) slowDownLocked(g *deviceGrant, now time.Time) *oauthErr {
	g.lastPoll = now
	g.interval += 5 * time.Second
	return badRequest("slow_down", descSlowDown)
}

// DeviceInterval returns the polling interval the provider currently
// requires for the device code carrying userCode, grown by every slow_down.
func (p *Provider) DeviceInterval(userCode string) (time.Duration, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	g, ok := p.userCode[normalizeUserCode(userCode)]
	if !ok {
		return 0, fmt.Errorf("%w %q", ErrUnknownUserCode, userCode)
	}
	return g.interval, nil
}
