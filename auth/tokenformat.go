package auth

import (
	"encoding/json"
	"time"
)

// storedToken is a Token in the token stores' own JSON format: the one
// place a token's secrets are written out, and only to a store.
type storedToken struct {
	AccessToken   string                     `json:"access_token"`
	TokenType     string                     `json:"token_type,omitempty"`
	RefreshToken  string                     `json:"refresh_token,omitempty"`
	IDToken       string                     `json:"id_token,omitempty"`
	Scope         string                     `json:"scope,omitempty"`
	Expiry        time.Time                  `json:"expiry,omitzero"`
	RefreshExpiry time.Time                  `json:"refresh_expiry,omitzero"`
	Extra         map[string]json.RawMessage `json:"extra,omitempty"`
	Generation    uint64                     `json:"generation,omitempty"`
	Spend         *spendRecord               `json:"spend,omitempty"`
	Obtained      time.Time                  `json:"obtained_at,omitzero"`
	Reseeded      time.Time                  `json:"reseeded_at,omitzero"`
	Identity      *Identity                  `json:"identity,omitempty"`
	DPoPKey       string                     `json:"dpop_key,omitempty"` // PKCS #8, base64
	DPoPJKT       string                     `json:"dpop_jkt,omitempty"`
}

// marshalStored encodes tok in the stores' format.
func marshalStored(tok *Token) ([]byte, error) {
	st := storedToken{
		AccessToken: tok.AccessToken.Reveal(), TokenType: tok.TokenType,
		RefreshToken: tok.RefreshToken.Reveal(), IDToken: tok.IDToken.Reveal(),
		Scope: tok.Scope, Expiry: tok.Expiry, RefreshExpiry: tok.RefreshExpiry,
		Generation: tok.gen(), Spend: tok.spendRec(), Identity: tok.ident(),
	}
	if k := tok.DPoPKey; k != nil {
		st.DPoPKey, st.DPoPJKT = k.pkcs8.Reveal(), k.jkt
	}
	if tok.meta != nil {
		st.Obtained, st.Reseeded = tok.meta.obtained, tok.meta.reseeded
	}
	if len(tok.Extra) > 0 {
		st.Extra = make(map[string]json.RawMessage, len(tok.Extra))
		for k, v := range tok.Extra {
			b, err := json.Marshal(v.Reveal())
			if err != nil {
				return nil, err
			}
			st.Extra[k] = b
		}
	}
	return json.Marshal(st)
}

// unmarshalStored decodes a token in the stores' format. Its errors quote
// nothing of data.
func unmarshalStored(data []byte) (*Token, error) {
	var st *storedToken
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, err
	}
	if st == nil {
		return nil, nil
	}
	key, err := parseStoredDPoPKey(st.DPoPKey, st.DPoPJKT)
	if err != nil {
		return nil, err
	}
	tok := &Token{
		AccessToken: NewSecret(st.AccessToken), TokenType: st.TokenType,
		RefreshToken: NewSecret(st.RefreshToken), IDToken: NewSecret(st.IDToken),
		Scope: st.Scope, Expiry: st.Expiry, RefreshExpiry: st.RefreshExpiry, DPoPKey: key,
	}
	tok.setMeta(func(m *tokenMeta) {
		m.gen, m.spend, m.obtained, m.reseeded = st.Generation, st.Spend, st.Obtained, st.Reseeded
		if st.Identity != nil && !st.Identity.IsZero() {
			m.ident = st.Identity
		}
	})
	if len(st.Extra) > 0 {
		tok.Extra = make(map[string]Secret, len(st.Extra))
		for k, v := range st.Extra {
			tok.Extra[k] = NewSecret(extraText(v))
		}
	}
	return tok, nil
}

// extraText is how a JSON value of a token response is kept in
// [Token.Extra]: a string as itself, any other value as its JSON text.
func extraText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}
