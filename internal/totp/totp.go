// Package totp computes RFC 6238 time-based one-time passwords (SHA-1,
// 30-second steps, 6 digits: the parameters every authenticator app uses).
// It is a few lines, so it is not worth a dependency.
package totp

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"strings"
	"time"
)

// Step is the RFC 6238 time step.
const Step = 30 * time.Second

// Code returns the 6-digit code of the base32 secret at t
// (https://www.rfc-editor.org/rfc/rfc6238#section-4).
func Code(secret string, t time.Time) (string, error) {
	key, err := decode(secret)
	if err != nil {
		return "", err
	}
	return code(key, uint64(t.Unix())/uint64(Step/time.Second)), nil
}

// Verify reports whether c is the code of secret at t or one step either
// side (clock skew), comparing in constant time.
func Verify(secret, c string, t time.Time) bool {
	key, err := decode(secret)
	if err != nil {
		return false
	}
	counter := uint64(t.Unix()) / uint64(Step/time.Second)
	ok := 0
	for _, n := range []uint64{counter - 1, counter, counter + 1} {
		ok |= subtle.ConstantTimeCompare([]byte(code(key, n)), []byte(c))
	}
	return ok == 1
}

func decode(secret string) ([]byte, error) {
	s := strings.ToUpper(strings.ReplaceAll(secret, " ", ""))
	key, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.TrimRight(s, "="))
	if err != nil || len(key) == 0 {
		return nil, fmt.Errorf("totp: secret is not base32")
	}
	return key, nil
}

func code(key []byte, counter uint64) string {
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], counter)
	m := hmac.New(sha1.New, key)
	m.Write(msg[:])
	sum := m.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	v := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	return fmt.Sprintf("%06d", v%1_000_000)
}
