package app_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"mediasvc/adapters/memstore"
	"mediasvc/app"
	"mediasvc/domain"
	"mediasvc/ports"
	"mediasvc/ports/portstest"
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

// A WHEP offer whose answer outlives Config.AnswerTimeout (gathering or
// the peer slowed down by load) fails with an error that wraps
// context.DeadlineExceeded — which the HTTP adapter answers 503 with
// Retry-After, not 500 — and leaves no session behind.
func TestWHEPAnswerTimeout(t *testing.T) {
	r := newRigOn(t, app.Config{AnswerTimeout: 50 * time.Millisecond}, memstore.New(memstore.Options{}), nil, func(d *app.Deps) {
		tr := *d.Transport.(*portstest.Transport)
		inner := tr.NewPeerFunc
		tr.NewPeerFunc = func(ctx context.Context, f ports.Fanout, opts ports.PeerOptions) (ports.Peer, error) {
			p, err := inner(ctx, f, opts)
			if err != nil {
				return nil, err
			}
			p.(*portstest.Peer).AnswerFunc = func(ctx context.Context, _ string) (string, error) {
				<-ctx.Done()
				return "", fmt.Errorf("answer: wait for candidates: %w", ctx.Err())
			}
			return p, nil
		}
		d.Transport = &tr
	})
	_, _, err := r.svc.WHEP(context.Background(), "dev", "o", "offer")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("whep past the answer timeout: %v, want context.DeadlineExceeded", err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		n, _ := r.store.Count(context.Background())
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions left after the failed offer", n)
		}
	}
}
