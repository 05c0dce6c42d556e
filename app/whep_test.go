package app_test

import (
	"context"
	"errors"
	"testing"

	"mediasvc/app"
	"mediasvc/domain"
)

// WHEP: a failed creation leaves nothing behind.

func TestWHEPFailureLeavesNothing(t *testing.T) {
	r := newRig(t, app.Config{})
	ctx := context.Background()
	_, _, err := r.svc.WHEP(ctx, "nope", "o", "offer")
	if !errors.Is(err, domain.ErrDeviceNotFound) {
		t.Fatalf("whep unknown device: %v", err)
	}
	sess, answer, err := r.svc.WHEP(ctx, "dev", "o", "offer")
	if err != nil || answer != "answer" || sess.Kind != "whep" {
		t.Fatalf("whep: %+v %q %v", sess, answer, err)
	}
}
