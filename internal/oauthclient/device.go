package oauthclient

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/internal/redact"
)

// DeviceAuth is a device authorization answer
// (https://www.rfc-editor.org/rfc/rfc8628#section-3.2).
type DeviceAuth struct {
	DeviceCode              auth.Secret
	UserCode                string
	VerificationURI         string
	VerificationURIComplete string
	// Expiry is when the device code expires.
	Expiry time.Time
	// Interval is the minimum wait between polls; zero when not sent.
	Interval time.Duration
}

// DeviceAuthorization posts form (client_id added, scope as given) to the
// device authorization endpoint and parses the answer.
func (c *Client) DeviceAuthorization(ctx context.Context, endpoint string, form url.Values) (*DeviceAuth, error) {
	resp, err := c.Post(ctx, endpoint, form)
	if err != nil {
		return nil, err
	}
	return parseDeviceAuthResponse(resp.StatusCode, resp.Header, resp.Body, c.clock.Now(), c.scrubber(form))
}

// parseDeviceAuthResponse parses a device authorization answer, as
// tolerantly as ParseTokenResponse; "verification_url" (Google's spelling)
// is accepted for verification_uri.
func parseDeviceAuthResponse(status int, header http.Header, body []byte, now time.Time, scrub *redact.Scrubber) (*DeviceAuth, error) {
	obj, rerr := decodeObject(status, header, body, scrub)
	if oe := oauthError(status, obj, scrub); oe != nil {
		return nil, oe
	}
	if rerr != nil {
		return nil, rerr
	}
	bad := func(reason string, args ...any) error {
		return responseError(status, header, body, fmt.Sprintf(reason, args...), scrub)
	}
	if status < 200 || status > 299 {
		return nil, bad("HTTP status %d without an OAuth error", status)
	}
	d := &DeviceAuth{}
	var code string
	for _, f := range []struct {
		keys []string
		dst  *string
	}{
		{[]string{"device_code"}, &code},
		{[]string{"user_code"}, &d.UserCode},
		{[]string{"verification_uri", "verification_url"}, &d.VerificationURI},
		{[]string{"verification_uri_complete", "verification_url_complete"}, &d.VerificationURIComplete},
	} {
		for _, k := range f.keys {
			v, ok := obj[k]
			if !ok || v == nil {
				continue
			}
			s, isStr := v.(string)
			if !isStr {
				return nil, bad("%s is %s, want a string", k, typeName(v))
			}
			*f.dst = s
			break
		}
	}
	d.DeviceCode = auth.NewSecret(code)
	switch {
	case code == "":
		return nil, bad("no device_code")
	case d.UserCode == "":
		return nil, bad("no user_code")
	case d.VerificationURI == "":
		return nil, bad("no verification_uri")
	}
	exp, ok, err := seconds(obj, "expires_in")
	if err != nil {
		return nil, bad("%v", err)
	}
	if !ok || exp <= 0 {
		return nil, bad("no expires_in")
	}
	d.Expiry = now.Add(exp)
	iv, _, err := seconds(obj, "interval")
	if err != nil {
		return nil, bad("%v", err)
	}
	d.Interval = iv
	return d, nil
}
