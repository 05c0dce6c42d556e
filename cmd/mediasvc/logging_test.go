package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestLogSwitch checks that a level and a format change reach a logger
// derived before the change, its attributes and groups kept.
func TestLogSwitch(t *testing.T) {
	var buf bytes.Buffer
	sw := newLogSwitch(LogConfig{Level: "info", Format: "text"}, &buf)
	log := sw.logger().With("component", "x").WithGroup("g")
	log.Debug("hidden")
	log.Info("first", "k", 1)
	sw.set(LogConfig{Level: "debug", Format: "json"})
	log.Debug("second", "k", 2)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("logged %d lines, want 2:\n%s", len(lines), buf.String())
	}
	if !strings.Contains(lines[0], "msg=first") || !strings.Contains(lines[0], "component=x") || !strings.Contains(lines[0], "g.k=1") {
		t.Errorf("text line = %s", lines[0])
	}
	if !strings.Contains(lines[1], `"msg":"second"`) || !strings.Contains(lines[1], `"component":"x"`) || !strings.Contains(lines[1], `"g":{"k":2}`) {
		t.Errorf("json line after the switch = %s", lines[1])
	}
}
