package auth

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// storeEntryVersion is the version of the token stores' entry format that
// this code writes for a token without a DPoP key; it reads it and
// storeEntryVersionDPoP.
const storeEntryVersion = 1

// storeEntryVersionDPoP is the version of an entry whose token carries a
// DPoP key: programs from before DPoP ignore such an entry (another
// version) instead of sending its token as a bearer token and dropping
// the key when they save it again.
const storeEntryVersionDPoP = 2

// storeEntry is one stored token, with the key it was saved for.
type storeEntry struct {
	Version int             `json:"version"`
	Key     json.RawMessage `json:"key"`
	Token   json.RawMessage `json:"token"`
	SavedAt time.Time       `json:"saved_at"`
}

// ErrOtherConfiguration means a stored entry was saved for another
// configuration of the same login (other scopes, audiences or resources):
// it is not used, and the next login replaces it.
var ErrOtherConfiguration = errors.New("auth: saved for another configuration (scopes, audiences or resources differ)")

// Name is a stable name for key's identity (issuer, client, user): hex
// SHA-256, safe in file names and Redis keys, the same for every
// configuration of one login.
func (k StoreKey) Name() string {
	sum := sha256.Sum256([]byte(k.Identity()))
	return hex.EncodeToString(sum[:])
}

// EncodeStoreEntry encodes tok, saved for key at savedAt, in the token
// stores' versioned format — FileStore's files, and the values of stores
// in other packages (auth/redisstore). The result holds the token's
// secrets in clear: it goes to a store only.
func EncodeStoreEntry(key StoreKey, tok *Token, savedAt time.Time) ([]byte, error) {
	if tok == nil {
		return nil, fmt.Errorf("%w: nil token", ErrMalformedToken)
	}
	k, err := json.Marshal(key)
	if err != nil {
		return nil, fmt.Errorf("auth: encode store key: %w", err)
	}
	t, err := marshalStored(tok)
	if err != nil {
		// The error of a custom Extra value may quote it: do not wrap it.
		return nil, fmt.Errorf("%w: token cannot be encoded as JSON (check Extra)", ErrMalformedToken)
	}
	v := storeEntryVersion
	if tok.DPoPKey != nil {
		v = storeEntryVersionDPoP
	}
	return json.Marshal(storeEntry{Version: v, Key: k, Token: t, SavedAt: savedAt.UTC()})
}

// DecodeStoreEntry decodes an entry that EncodeStoreEntry wrote, for want.
// An entry saved for another configuration is an error wrapping
// ErrOtherConfiguration; any other unusable entry (empty, corrupt,
// truncated, another version) is an error that says what is wrong without
// quoting the data.
func DecodeStoreEntry(data []byte, want StoreKey) (*Token, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("auth: empty entry")
	}
	var e storeEntry
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, errors.New("auth: corrupt entry: " + describeJSONError(err))
	}
	if e.Version != storeEntryVersion && e.Version != storeEntryVersionDPoP {
		return nil, fmt.Errorf("auth: unknown format version %d (this program reads versions %d and %d)", e.Version, storeEntryVersion, storeEntryVersionDPoP)
	}
	var key StoreKey
	if err := json.Unmarshal(e.Key, &key); err != nil || len(e.Key) == 0 {
		return nil, errors.New("auth: corrupt entry: key " + describeJSONError(err))
	}
	if !key.Equal(want) {
		return nil, ErrOtherConfiguration
	}
	tok, err := unmarshalStored(e.Token)
	if err != nil || tok == nil {
		return nil, errors.New("auth: corrupt entry: token " + describeJSONError(err))
	}
	return tok, nil
}
