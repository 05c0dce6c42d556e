package app_test

import (
	"context"
	"errors"
	"testing"

	"mediasvc/app"
	"mediasvc/domain"
)

// Drain: every session told bye, new ones refused.

func TestDrainSaysByeAndRefusesNewSessions(t *testing.T) {
	r := newRig(t, app.Config{})
	ctx := context.Background()
	sess, token, _ := r.svc.CreateSession(ctx, "dev", domain.RoleViewer, "o")
	var ev events
	detach, _ := r.svc.Connect(ctx, sess.ID, token, ev.add)
	defer detach()
	if _, err := r.svc.Offer(ctx, sess.ID, "offer"); err != nil {
		t.Fatal(err)
	}
	capt := <-r.captures
	if err := r.svc.Drain(ctx, "shutdown"); err != nil {
		t.Fatal(err)
	}
	if r.svc.Ready() {
		t.Fatal("ready while draining")
	}
	if !ev.has(domain.EventBye, "shutdown") {
		t.Fatal("no bye on drain")
	}
	if !capt.Closed.Load() {
		t.Fatal("capture left open after drain")
	}
	if _, _, err := r.svc.CreateSession(ctx, "dev", domain.RoleViewer, "o"); !errors.Is(err, domain.ErrDraining) {
		t.Fatalf("create while draining: %v", err)
	}
}
