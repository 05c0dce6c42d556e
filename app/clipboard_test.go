package app_test

import (
	"context"
	"strings"
	"testing"

	"mediasvc/adapters/memstore"
	"mediasvc/app"
	"mediasvc/domain"
	"mediasvc/ports/portstest"
)

// clipRig is a service whose device "dev" tells of its clipboard.
func clipRig(t *testing.T) (*rig, *portstest.Clipboard) {
	t.Helper()
	clip := &portstest.Clipboard{}
	r := newRigOn(t, app.Config{}, memstore.New(memstore.Options{}), nil, func(d *app.Deps) {
		d.Sources = []app.Source{{Screen: d.Sources[0].Screen, Input: d.Sources[0].Input, Clipboard: clip}}
	})
	eventually(t, "the clipboard watched", func() bool { return clip.Watchers() == 1 })
	return r, clip
}

// attach creates a session of role for owner and attaches a socket.
func attach(t *testing.T, r *rig, role domain.Role, owner string) (domain.Session, *events) {
	t.Helper()
	ctx := context.Background()
	sess, token, err := r.svc.CreateSession(ctx, "dev", role, owner)
	if err != nil {
		t.Fatal(err)
	}
	ev := &events{}
	detach, err := r.svc.Connect(ctx, sess.ID, token, ev.add)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(detach)
	return sess, ev
}

func (e *events) clipboards() []domain.SessionEvent {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []domain.SessionEvent
	for _, ev := range e.evs {
		if ev.Type == domain.EventClipboard {
			out = append(out, ev)
		}
	}
	return out
}

// TestDeviceClipboardToControllersOnly: a change of the device's
// clipboard reaches its controller sessions, never a viewer nor another
// device's controller; a text past the clipboard limit is cut at a UTF-8
// boundary and marked.
func TestDeviceClipboardToControllersOnly(t *testing.T) {
	r, clip := clipRig(t)
	_, ctl := attach(t, r, domain.RoleController, "alice")
	_, view := attach(t, r, domain.RoleViewer, "bob")

	clip.Push("other", "not for dev")
	clip.Push("dev", "héllo")
	eventually(t, "the controller told", func() bool { return len(ctl.clipboards()) == 1 })
	if got := ctl.clipboards()[0]; got.Text != "héllo" || got.Truncated {
		t.Fatalf("controller got %+v", got)
	}
	big := strings.Repeat("é", domain.MaxClipboardText/2+10) // 2 bytes each: past the limit
	clip.Push("dev", big)
	eventually(t, "the big text", func() bool { return len(ctl.clipboards()) == 2 })
	got := ctl.clipboards()[1]
	if !got.Truncated || len(got.Text) > domain.MaxClipboardText || len(got.Text) < domain.MaxClipboardText-1 || !strings.HasPrefix(big, got.Text) {
		t.Fatalf("big text: %d bytes, truncated %v", len(got.Text), got.Truncated)
	}
	// Deliveries are in order: the viewer had both chances already.
	if n := len(view.clipboards()); n != 0 {
		t.Fatalf("viewer got %d clipboard events", n)
	}
}

// TestDeviceClipboardFarm: with the device farm, only the device's
// current controllers get its clipboard (not a controller session
// waiting in the queue), and each delivery is audited with the text's
// length only — its contents only when the operator records text.
func TestDeviceClipboardFarm(t *testing.T) {
	for _, record := range []bool{false, true} {
		r, clip := clipRig(t)
		fr := newFarmRig(t, app.FarmConfig{RecordText: record})
		r.svc.UseFarm(fr.farm)
		ctx := context.Background()
		a, aev := attach(t, r, domain.RoleController, "alice")
		b, bev := attach(t, r, domain.RoleController, "bob")
		if _, out, err := fr.farm.RequestControl(ctx, app.Actor{Subject: "alice", Session: a.ID}, "dev"); err != nil || out != domain.ControlGranted {
			t.Fatalf("alice: %v %v", out, err)
		}
		if _, out, err := fr.farm.RequestControl(ctx, app.Actor{Subject: "bob", Session: b.ID}, "dev"); err != nil || out != domain.ControlQueued {
			t.Fatalf("bob: %v %v", out, err)
		}
		clip.Push("dev", "secret")
		eventually(t, "alice told", func() bool { return len(aev.clipboards()) == 1 })
		if _, err := fr.farm.ReleaseControl(ctx, app.Actor{Subject: "alice", Session: a.ID}, "dev"); err != nil {
			t.Fatal(err)
		}
		clip.Push("dev", "second")
		eventually(t, "bob told, once in control", func() bool { return len(bev.clipboards()) == 1 })
		if bev.clipboards()[0].Text != "second" || len(aev.clipboards()) != 1 {
			t.Fatalf("bob %+v, alice %d", bev.clipboards(), len(aev.clipboards()))
		}
		es, err := fr.audit.Query(ctx, domain.AuditFilter{Limit: domain.MaxAuditLimit})
		if err != nil {
			t.Fatal(err)
		}
		var details []string
		for _, e := range es {
			if e.Action == domain.AuditDeviceClipboard {
				details = append(details, e.Subject+" "+e.Detail)
			}
		}
		want := []string{"alice length 6", "bob length 6"}
		if record {
			want = []string{`alice length 6 text "secret"`, `bob length 6 text "second"`}
		}
		if strings.Join(details, "|") != strings.Join(want, "|") {
			t.Errorf("record_text %v: audit %q, want %q", record, details, want)
		}
	}
}
