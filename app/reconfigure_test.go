package app_test

import (
	"context"
	"errors"
	"testing"

	"mediasvc/app"
	"mediasvc/domain"
)

// Hot-reloaded tunables applied to the running service.

// Reconfigure changes the quota and the input budget for sessions created
// from then on; a session in progress keeps the budget it started with.
func TestReconfigure(t *testing.T) {
	r := newRig(t, app.Config{Quota: domain.Quota{Total: 10}, InputRate: 1000, InputBurst: 1000})
	ctx := context.Background()
	early, _, err := r.svc.CreateSession(ctx, "dev", domain.RoleController, "o")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.svc.CreateSession(ctx, "dev", domain.RoleViewer, "o"); err != nil {
		t.Fatal(err)
	}
	r.svc.Reconfigure(app.Tunables{Quota: domain.Quota{Total: 2}, InputRate: 0.001, InputBurst: 1})
	if _, _, err := r.svc.CreateSession(ctx, "dev", domain.RoleViewer, "o"); !errors.Is(err, domain.ErrLimitExceeded) {
		t.Fatalf("third session under the lowered quota = %v, want ErrLimitExceeded", err)
	}
	r.svc.Reconfigure(app.Tunables{Quota: domain.Quota{Total: 3}, InputRate: 0.001, InputBurst: 1})
	late, _, err := r.svc.CreateSession(ctx, "dev", domain.RoleController, "o")
	if err != nil {
		t.Fatalf("session under the raised quota = %v", err)
	}
	tap := domain.InputEvent{Type: domain.InputTap, X: 10, Y: 10}
	for _, id := range []domain.SessionID{early.ID, late.ID} {
		if _, err := r.svc.Offer(ctx, id, "offer"); err != nil {
			t.Fatal(err)
		}
	}
	for range 5 {
		if err := r.svc.Input(ctx, early.ID, tap); errors.Is(err, domain.ErrRateLimited) {
			t.Fatal("the session from before the reload lost its input budget")
		}
	}
	_ = r.svc.Input(ctx, late.ID, tap)
	if err := r.svc.Input(ctx, late.ID, tap); !errors.Is(err, domain.ErrRateLimited) {
		t.Fatalf("second input of a session with burst 1 = %v, want ErrRateLimited", err)
	}
}
