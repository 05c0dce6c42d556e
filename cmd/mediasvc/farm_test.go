package main

import (
	"strings"
	"testing"
	"time"
)

func TestFarmConfigDefaults(t *testing.T) {
	cfg, _, err := loadConfig(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Control.MaxControllers != 1 || cfg.Control.Grace != 10*time.Second || cfg.Audit.MaxEvents != 100000 || cfg.Reservations.Hide {
		t.Fatalf("farm defaults = %+v %+v %+v", cfg.Control, cfg.Audit, cfg.Reservations)
	}
}

func TestFarmConfigReportsEveryBadField(t *testing.T) {
	file := writeFile(t, `
control:
  max_controllers: 0
  grace: -1s
reservations:
  max_duration: 1s
  max_ahead: -1h
audit:
  max_events: 5
webhooks:
  urls: ["ftp://x", "https://ok.example/hook"]
  secret: short
  queue: 0
  attempts: 99
farm:
  admins: [nobody]
`)
	_, _, err := loadConfig([]string{"-config", file}, nil)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"control.max_controllers", "control.grace", "reservations.max_duration", "reservations.max_ahead",
		"audit.max_events", `webhooks.urls: "ftp://x"`, "webhooks.secret", "webhooks.queue", "webhooks.attempts", `farm.admins: "nobody"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "ok.example") {
		t.Errorf("a good webhook URL was reported: %v", err)
	}
}

func TestFarmConfigFromEnv(t *testing.T) {
	cfg, _, err := loadConfig(nil, []string{
		"MEDIASVC_WEBHOOKS_URLS=http://a.example/h,http://b.example/h", "MEDIASVC_WEBHOOKS_SECRET=0123456789abcdef",
		"MEDIASVC_CONTROL_MAX_CONTROLLERS=2", "MEDIASVC_RESERVATIONS_HIDE=true",
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Webhooks.URLs) != 2 || cfg.Control.MaxControllers != 2 || !cfg.Reservations.Hide {
		t.Fatalf("env = %+v %+v %+v", cfg.Webhooks, cfg.Control, cfg.Reservations)
	}
}
