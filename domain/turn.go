package domain

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"slices"
	"strconv"
	"time"
)

// TURNCredentials returns the TURN REST API credentials for session id,
// valid until expiry, as coturn checks them with use-auth-secret and
// static-auth-secret (draft-uberti-behave-turn-rest): the username
// "<expiry in Unix seconds>:<id>" and the credential
// base64(HMAC-SHA1(secret, username)). coturn refuses an Allocate whose
// username's time has passed; an allocation made in time lives on through
// its refreshes.
func TURNCredentials(secret string, id SessionID, expiry time.Time) (username, credential string) {
	username = strconv.FormatInt(expiry.Unix(), 10) + ":" + string(id)
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(username))
	return username, base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// ICEServersFor returns servers as session id hands them out: a server
// with a Secret gets its own TURN REST username and credential valid until
// expiry (TURNCredentials), and no server carries its Secret.
func ICEServersFor(servers []ICEServer, id SessionID, expiry time.Time) []ICEServer {
	out := make([]ICEServer, len(servers))
	for i, s := range servers {
		out[i] = ICEServer{URLs: slices.Clone(s.URLs), Username: s.Username, Credential: s.Credential}
		if s.Secret != "" {
			out[i].Username, out[i].Credential = TURNCredentials(s.Secret, id, expiry)
		}
	}
	return out
}
