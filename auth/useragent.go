package auth

import (
	"fmt"
	"strings"
)

// Version is the authkit version that DefaultUserAgent names.
const Version = "0.1.0"

// DefaultUserAgent is the product token authkit sends as User-Agent on
// every request it makes (token, device authorization, revocation,
// discovery, JWKS) and, through the session and grpcauth, to the
// platform's services, unless configured otherwise.
const DefaultUserAgent = "authkit/" + Version

// CheckUserAgent returns ua, or DefaultUserAgent when ua is empty; a value
// with control characters is a configuration error.
func CheckUserAgent(ua string) (string, error) {
	if ua == "" {
		return DefaultUserAgent, nil
	}
	if strings.ContainsAny(ua, "\r\n\x00") {
		return "", fmt.Errorf("%w: UserAgent must not contain control characters", ErrInvalidConfig)
	}
	return ua, nil
}
