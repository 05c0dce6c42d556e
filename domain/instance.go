package domain

import "time"

// Instance is one running mediasvc process sharing a session store with
// others.
type Instance struct {
	ID string `json:"id"`
	// URL is where the instance's API is reached by other instances and
	// operators (instance.advertise_url).
	URL         string    `json:"url,omitempty"`
	StartedAt   time.Time `json:"started_at"`
	HeartbeatAt time.Time `json:"heartbeat_at"`
}
