package main

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"time"
)

// ControlConfig is control handoff (issue 13): how many sessions may
// control one device and how long a disconnected controller keeps it.
type ControlConfig struct {
	MaxControllers int           `koanf:"max_controllers"`
	Grace          time.Duration `koanf:"grace"`
}

// ReservationsConfig bounds reservations; Hide makes a device reserved
// for someone else invisible to everyone else.
type ReservationsConfig struct {
	Hide        bool          `koanf:"hide"`
	MaxDuration time.Duration `koanf:"max_duration"`
	MaxAhead    time.Duration `koanf:"max_ahead"`
}

// AuditConfig is the audit trail: MaxEvents bounds the in-memory ring or
// the Redis stream (MAXLEN ~); RecordText records typed and pasted text
// instead of its length only.
type AuditConfig struct {
	RecordText bool `koanf:"record_text"`
	MaxEvents  int  `koanf:"max_events"`
}

// WebhooksConfig lists the URLs told about farm events, and the HMAC
// secret that signs them.
type WebhooksConfig struct {
	URLs     []string `koanf:"urls"`
	Secret   string   `koanf:"secret"`
	Queue    int      `koanf:"queue"`
	Attempts int      `koanf:"attempts"`
}

// FarmConfig holds what the farm adds beyond its own sections: which API
// key names are admins (take control, book for others, read the audit
// trail). Without API keys everyone is.
type FarmConfig struct {
	Admins []string `koanf:"admins"`
}

func farmDefaults() map[string]any {
	return map[string]any{
		"control.max_controllers":   1,
		"control.grace":             "10s",
		"reservations.hide":         false,
		"reservations.max_duration": "24h",
		"reservations.max_ahead":    "168h",
		"audit.record_text":         false,
		"audit.max_events":          100000,
		"webhooks.urls":             []string{},
		"webhooks.secret":           "",
		"webhooks.queue":            256,
		"webhooks.attempts":         5,
		"farm.admins":               []string{},
	}
}

// withFarmDefaults adds the farm's defaults to m.
func withFarmDefaults(m map[string]any) map[string]any {
	maps.Copy(m, farmDefaults())
	return m
}

// validateFarm returns one error per bad farm field.
func (c Config) validateFarm() []error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, a...)))
	}
	if c.Control.MaxControllers < 1 || c.Control.MaxControllers > 100 {
		bad("control.max_controllers", "must be 1..100, got %d", c.Control.MaxControllers)
	}
	if c.Control.Grace < 0 {
		bad("control.grace", "must be ≥ 0, got %s", c.Control.Grace)
	}
	if c.Reservations.MaxDuration < time.Minute {
		bad("reservations.max_duration", "must be at least 1m, got %s", c.Reservations.MaxDuration)
	}
	if c.Reservations.MaxAhead < 0 {
		bad("reservations.max_ahead", "must be ≥ 0, got %s", c.Reservations.MaxAhead)
	}
	if c.Audit.MaxEvents < 100 {
		bad("audit.max_events", "must be at least 100, got %d", c.Audit.MaxEvents)
	}
	for _, u := range c.Webhooks.URLs {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			bad("webhooks.urls", "%q is not an http(s) URL", u)
		}
	}
	if len(c.Webhooks.URLs) > 0 && len(c.Webhooks.Secret) < 16 {
		bad("webhooks.secret", "must be at least 16 bytes when webhooks.urls are set")
	}
	if c.Webhooks.Queue < 1 {
		bad("webhooks.queue", "must be > 0, got %d", c.Webhooks.Queue)
	}
	if c.Webhooks.Attempts < 1 || c.Webhooks.Attempts > 20 {
		bad("webhooks.attempts", "must be 1..20, got %d", c.Webhooks.Attempts)
	}
	for _, a := range c.Farm.Admins {
		_, plain := c.Auth.APIKeys[a]
		granted := slices.ContainsFunc(c.Auth.Keys, func(k KeyConfig) bool { return k.Name == a })
		if !plain && !granted {
			bad("farm.admins", "%q is not the name of a key in auth.api_keys or auth.keys", a)
		}
	}
	return errs
}
