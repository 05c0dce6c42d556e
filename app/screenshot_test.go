package app_test

import (
	"context"
	"errors"
	"testing"

	"mediasvc/adapters/memstore"
	"mediasvc/app"
	"mediasvc/domain"
)

type keyframesFunc func(context.Context, domain.DeviceID) ([]byte, error)

func (f keyframesFunc) Keyframe(ctx context.Context, id domain.DeviceID) ([]byte, error) {
	return f(ctx, id)
}

type stillFunc func(context.Context, []byte) ([]byte, error)

func (f stillFunc) DecodeStill(ctx context.Context, au []byte) ([]byte, error) { return f(ctx, au) }

// TestScreenshotFromKeyframe: a source without files but with keyframes
// (the demo) has its latest keyframe decoded; without a decoder that is
// unavailable, and a source with neither gives no screenshots.
func TestScreenshotFromKeyframe(t *testing.T) {
	kf := keyframesFunc(func(_ context.Context, id domain.DeviceID) ([]byte, error) {
		return []byte("idr of " + string(id)), nil
	})
	dec := stillFunc(func(_ context.Context, au []byte) ([]byte, error) { return append([]byte("png:"), au...), nil })
	for _, c := range []struct {
		name      string
		keyframes bool
		stills    bool
		want      string
		err       error
	}{
		{"decoded", true, true, "png:idr of dev", nil},
		{"no decoder", true, false, "", domain.ErrUnavailable},
		{"neither", false, true, "", domain.ErrForbidden},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRigOn(t, app.Config{}, memstore.New(memstore.Options{}), nil, func(d *app.Deps) {
				src := d.Sources[0]
				if c.keyframes {
					src.Keyframes = kf
				}
				d.Sources = []app.Source{src}
				if c.stills {
					d.Stills = dec
				}
			})
			got, err := r.svc.Screenshot(context.Background(), "dev")
			if string(got) != c.want || !errors.Is(err, c.err) {
				t.Fatalf("got %q %v, want %q %v", got, err, c.want, c.err)
			}
		})
	}
	r := newRig(t, app.Config{})
	if _, err := r.svc.Screenshot(context.Background(), "nope"); !errors.Is(err, domain.ErrDeviceNotFound) {
		t.Fatalf("unknown device: %v", err)
	}
}
