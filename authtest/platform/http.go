package platform

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/authkit-go/authkit/auth"
	"github.com/authkit-go/authkit/grpcauth"
	"github.com/authkit-go/authkit/internal/dpop"
	"github.com/authkit-go/authkit/internal/jsonresp"
)

// Paths served by the hub and the access manager of a [Platform].
const (
	// PathMe answers the caller's identity as a [Me], on both HTTP services.
	PathMe = "/api/me"
	// PathProjects answers the hub's [Projects].
	PathProjects = "/api/projects"
	// PathPermissions answers the access manager's [Permissions].
	PathPermissions = "/api/permissions"
)

// Authentication methods reported in [Me].Method.
const (
	// MethodJWT is a bearer JWT checked against the issuer's keys.
	MethodJWT = "jwt"
	// MethodAPIKey is an API key id and secret.
	MethodAPIKey = "api-key"
)

// Me is the caller as a service of a [Platform] sees it: the answer of
// GET /api/me and of [WhoAmI].
type Me struct {
	// Service is the answering service: "hub", "access manager" or
	// "message service" (the values of auth.Service).
	Service string `json:"service"`
	// Subject is the JWT "sub" or the API key id.
	Subject string `json:"subject"`
	// Username is the JWT "preferred_username" or the API key's user.
	Username string `json:"username,omitempty"`
	// Method is MethodJWT or MethodAPIKey.
	Method string `json:"method"`
	// ClientID is the JWT "client_id" (or "azp") claim, if any.
	ClientID string `json:"client_id,omitempty"`
}

// Project is one project of the hub.
type Project struct {
	// ID is the project id.
	ID string `json:"id"`
	// Name is the project name.
	Name string `json:"name"`
}

// Projects is the answer of the hub's GET /api/projects.
type Projects struct {
	// Owner is the caller's subject.
	Owner string `json:"owner"`
	// Projects are the caller's projects.
	Projects []Project `json:"projects"`
}

// Permissions is the answer of the access manager's GET /api/permissions.
type Permissions struct {
	// Subject is the caller's subject.
	Subject string `json:"subject"`
	// Permissions are the JWT's scopes, or the API key's permissions.
	Permissions []string `json:"permissions"`
}

// platformProjects are the hub's projects; every caller owns them all.
var platformProjects = []Project{{ID: "p-1", Name: "apollo"}, {ID: "p-2", Name: "gemini"}}

func (pl *Platform) hubHandler(v grpcauth.Validator) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathMe, func(w http.ResponseWriter, r *http.Request) {
		jsonresp.Write(w, http.StatusOK, meOf(ServiceHub, identityOf(r)))
	})
	mux.HandleFunc("GET "+PathProjects, func(w http.ResponseWriter, r *http.Request) {
		jsonresp.Write(w, http.StatusOK, Projects{Owner: identityOf(r).Subject, Projects: platformProjects})
	})
	return pl.authenticateHTTP(ServiceHub, v, mux)
}

func (pl *Platform) accessManagerHandler(v grpcauth.Validator) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathMe, func(w http.ResponseWriter, r *http.Request) {
		jsonresp.Write(w, http.StatusOK, meOf(ServiceAccessManager, identityOf(r)))
	})
	mux.HandleFunc("GET "+PathPermissions, func(w http.ResponseWriter, r *http.Request) {
		jsonresp.Write(w, http.StatusOK, Permissions{Subject: identityOf(r).Subject, Permissions: pl.permissions(identityOf(r))})
	})
	return pl.authenticateHTTP(ServiceAccessManager, v, mux)
}

// authenticateHTTP checks each request's headers with v, as the message
// service checks metadata, and runs next with the caller's identity.
func (pl *Platform) authenticateHTTP(s Service, v grpcauth.Validator, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		md := metadata.MD{}
		for k, vals := range r.Header {
			md[strings.ToLower(k)] = vals
		}
		uri := dpop.RequestURI(r)
		if pl.askNonce(w, r) {
			return
		}
		id, err := v.Validate(grpcauth.WithHTTPRequest(r.Context(), r.Method, uri), md)
		if err == nil && id == nil {
			err = errors.New("no identity")
		}
		if err != nil {
			if st, ok := status.FromError(err); ok && st.Code() == codes.Unavailable {
				w.Header().Set("Retry-After", "0")
				jsonresp.Write(w, http.StatusServiceUnavailable, map[string]string{
					"error": "unavailable", "message": st.Message()})
				return
			}
			msg := "invalid credentials"
			var e *grpcauth.Error
			if errors.As(err, &e) && e.Message != "" {
				msg = e.Message
			}
			// https://www.rfc-editor.org/rfc/rfc6750#section-3, and
			// https://www.rfc-editor.org/rfc/rfc9449#section-7.1 for DPoP.
			scheme := "Bearer"
			if r.Header.Get(auth.DPoPHeader) != "" {
				scheme = auth.DPoPScheme
			}
			challenge := scheme + ` realm="` + string(s) + `"`
			if !errors.Is(err, grpcauth.ErrNoCredentials) {
				challenge += `, error="invalid_token", error_description="` + challengeText(msg) + `"`
			}
			w.Header().Set("WWW-Authenticate", challenge)
			jsonresp.Write(w, http.StatusUnauthorized, map[string]string{"error": "unauthenticated", "message": msg})
			return
		}
		next.ServeHTTP(w, r.WithContext(grpcauth.ContextWithIdentity(r.Context(), id)))
	})
}

// askNonce answers a request whose DPoP proof lacks the platform's
// nonce, with Config.DPoPNonce, with a 401 use_dpop_nonce and the nonce
// (https://www.rfc-editor.org/rfc/rfc9449#section-9), and reports whether
// it did. Any other proof is the validator's to check; every answer to a
// request with a proof carries the nonce.
func (pl *Platform) askNonce(w http.ResponseWriter, r *http.Request) bool {
	proof := r.Header.Get(auth.DPoPHeader)
	if !pl.cfg.DPoPNonce || proof == "" {
		return false
	}
	nonce := pl.dpopNonce()
	w.Header().Set(auth.DPoPNonceHeader, nonce)
	var c struct {
		Nonce string `json:"nonce"`
	}
	if parts := strings.Split(proof, "."); len(parts) == 3 {
		if payload, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil &&
			json.Unmarshal(payload, &c) == nil && c.Nonce == nonce {
			return false
		}
	}
	pl.mu.Lock()
	pl.nonceAsked++
	pl.mu.Unlock()
	w.Header().Set("WWW-Authenticate", `DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof"`)
	jsonresp.Write(w, http.StatusUnauthorized, map[string]string{"error": "use_dpop_nonce", "message": "send the DPoP-Nonce in the proof"})
	return true
}

// challengeText keeps the characters RFC 6750 §3 allows in
// error_description.
func challengeText(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' {
			return '\''
		}
		if r < 0x20 || r > 0x7e {
			return -1
		}
		return r
	}, s)
}

func identityOf(r *http.Request) *grpcauth.Identity {
	id, _ := grpcauth.IdentityFromContext(r.Context())
	return id
}

// me describes id as service s sees it.
func meOf(s Service, id *grpcauth.Identity) Me {
	m := Me{Service: string(s), Subject: id.Subject, Username: id.Username, Method: MethodJWT}
	if id.KeyID != "" {
		m.Method = MethodAPIKey
		return m
	}
	m.ClientID, _ = id.Claims["client_id"].(string)
	if m.ClientID == "" {
		m.ClientID, _ = id.Claims["azp"].(string)
	}
	return m
}

// permissions are the scopes of a JWT or the permissions of an API key.
func (pl *Platform) permissions(id *grpcauth.Identity) []string {
	if id.KeyID != "" {
		pl.mu.Lock()
		defer pl.mu.Unlock()
		return append([]string{}, pl.keys[id.KeyID].Permissions...)
	}
	scope, _ := id.Claims["scope"].(string)
	return strings.Fields(scope)
}
