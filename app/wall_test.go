package app_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"mediasvc/app"
	"mediasvc/domain"
	"mediasvc/ports"
)

// fakeWalls makes fakeWallPeers and keeps the last.
type fakeWalls struct {
	mu   sync.Mutex
	peer *fakeWallPeer
}

func (f *fakeWalls) NewWall(context.Context, ports.PeerOptions) (ports.WallPeer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.peer = &fakeWallPeer{tiles: map[string]ports.Fanout{}, paused: map[string]bool{}}
	return f.peer, nil
}

type fakeWallPeer struct {
	mu      sync.Mutex
	tiles   map[string]ports.Fanout
	paused  map[string]bool
	offers  int
	answers int
	closed  bool
}

func (p *fakeWallPeer) AddTile(key string, f ports.Fanout) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.tiles[key]; ok {
		return domain.ErrConflict
	}
	p.tiles[key] = f
	return nil
}

func (p *fakeWallPeer) RemoveTile(key string) {
	p.mu.Lock()
	delete(p.tiles, key)
	p.mu.Unlock()
}

func (p *fakeWallPeer) PauseTile(key string, paused bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.tiles[key]; !ok {
		return domain.ErrInvalidRequest
	}
	p.paused[key] = paused
	return nil
}

func (p *fakeWallPeer) Offer(context.Context) (string, map[string]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.offers++
	mids := map[string]string{}
	for k := range p.tiles {
		mids[k] = "0"
	}
	return "v=0 offer", mids, nil
}

func (p *fakeWallPeer) Answer(_ context.Context, sdp string) error {
	if sdp != "v=0 answer" {
		return domain.ErrInvalidOffer
	}
	p.mu.Lock()
	p.answers++
	p.mu.Unlock()
	return nil
}

func (p *fakeWallPeer) AddCandidate(domain.Candidate) error { return nil }

func (p *fakeWallPeer) TileStats(key string) (domain.QualityStats, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.tiles[key]
	return domain.QualityStats{PacketsSent: 5}, ok
}

func (p *fakeWallPeer) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	return nil
}

func (p *fakeWallPeer) state() (tiles, offers int, paused bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.tiles), p.offers, p.paused["dev"]
}

// A wall over a source with secondary captures: its tile opens a capture
// of its own with the wall's options (not the viewers' capture), the
// server offers once the tile is on the connection, a hidden tile is
// paused, two walls share the device's wall capture, and it stops a
// grace after the last wall closed.
func TestWallSecondaryCaptureShared(t *testing.T) {
	fw := &fakeWalls{}
	r := newRigOn(t, app.Config{Hub: app.HubConfig{Grace: 50 * time.Millisecond}}, newMemstore(), nil, func(d *app.Deps) {
		d.Walls = fw
		d.Sources[0].Secondary = true
	})
	var mu sync.Mutex
	var opened []domain.CaptureOptions
	open := r.src.OpenFunc
	r.src.OpenFunc = func(ctx context.Context, id domain.DeviceID, o domain.CaptureOptions) (ports.Capture, error) {
		mu.Lock()
		opened = append(opened, o)
		mu.Unlock()
		return open(ctx, id, o)
	}
	events := make(chan domain.WallEvent, 64)
	notify := func(ev domain.WallEvent) {
		select {
		case events <- ev:
		default:
		}
	}
	ctx := context.Background()
	if _, err := r.svc.OpenWall(ctx, app.WallOptions{ID: "w0"}); !errors.Is(err, domain.ErrInvalidRequest) {
		t.Fatalf("a wall without Visible and Notify: %v", err)
	}
	w, err := r.svc.OpenWall(ctx, app.WallOptions{ID: "w1", Visible: func(context.Context, domain.Device) bool { return true }, Notify: notify})
	if err != nil {
		t.Fatal(err)
	}
	peer := fw.peer
	eventually(t, "the offer with the tile", func() bool {
		select {
		case ev := <-events:
			return ev.Type == "offer" && len(ev.Tiles) == 1 && ev.Tiles[0].Mid == "0" && ev.Tiles[0].State == domain.TilePlaying
		default:
			return false
		}
	})
	mu.Lock()
	if len(opened) != 1 || !opened[0].Secondary || opened[0].MaxWidth != domain.WallMaxSize || opened[0].BitrateBps != domain.WallBitrateBps {
		t.Fatalf("captures opened with %+v, want one secondary at the wall's size and bitrate", opened)
	}
	mu.Unlock()
	if err := w.Answer(ctx, "nonsense"); !errors.Is(err, domain.ErrInvalidOffer) {
		t.Fatalf("a bad answer: %v", err)
	}
	if err := w.Answer(ctx, "v=0 answer"); err != nil {
		t.Fatal(err)
	}
	if err := w.SetVisible("dev", false); err != nil {
		t.Fatal(err)
	}
	if _, _, paused := peer.state(); !paused {
		t.Fatal("a hidden tile is not paused")
	}
	if err := w.SetVisible("nope", false); !errors.Is(err, domain.ErrInvalidRequest) {
		t.Fatalf("SetVisible of no tile: %v", err)
	}
	if tl := w.Tiles(); len(tl) != 1 || tl[0].State != domain.TilePaused || tl[0].PacketsSent != 5 {
		t.Fatalf("tiles %+v", tl)
	}

	// A second wall shares the wall capture; the viewers' capture never ran.
	w2, err := r.svc.OpenWall(ctx, app.WallOptions{ID: "w2", Visible: func(context.Context, domain.Device) bool { return true }, Notify: func(domain.WallEvent) {}})
	if err != nil {
		t.Fatal(err)
	}
	peer2 := fw.peer
	eventually(t, "the second wall's tile", func() bool { n, _, _ := peer2.state(); return n == 1 })
	if n := r.opens.Load(); n != 1 {
		t.Fatalf("%d captures opened for two walls, want 1", n)
	}
	w.Close()
	w2.Close()
	capt := <-r.captures
	eventually(t, "the wall capture stopped a grace after the last wall", func() bool { return capt.Closed.Load() })
	peer.mu.Lock()
	closed := peer.closed
	peer.mu.Unlock()
	if !closed {
		t.Fatal("the wall's peer was not closed")
	}
}

// A wall hides the devices Visible refuses, and a device that goes away
// loses its tile and the server offers again.
func TestWallFollowsDevices(t *testing.T) {
	fw := &fakeWalls{}
	r := newRigOn(t, app.Config{}, newMemstore(), nil, func(d *app.Deps) {
		d.Walls = fw
		d.Sources[0].Secondary = true
	})
	var mu sync.Mutex
	present := true
	devices := r.src.DevicesFunc
	r.src.DevicesFunc = func(ctx context.Context) ([]domain.Device, error) {
		mu.Lock()
		defer mu.Unlock()
		if !present {
			return nil, nil
		}
		return devices(ctx)
	}
	ctx := context.Background()
	hidden, err := r.svc.OpenWall(ctx, app.WallOptions{ID: "w0", Visible: func(context.Context, domain.Device) bool { return false }, Notify: func(domain.WallEvent) {}})
	if err != nil {
		t.Fatal(err)
	}
	defer hidden.Close()
	w, err := r.svc.OpenWall(ctx, app.WallOptions{ID: "w1", Visible: func(context.Context, domain.Device) bool { return true }, Notify: func(domain.WallEvent) {}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	peer := fw.peer
	eventually(t, "the tile offered", func() bool { n, o, _ := peer.state(); return n == 1 && o == 1 })
	if err := w.Answer(ctx, "v=0 answer"); err != nil {
		t.Fatal(err)
	}
	if tl := hidden.Tiles(); len(tl) != 0 {
		t.Fatalf("a wall that may see nothing has tiles %+v", tl)
	}
	mu.Lock()
	present = false
	mu.Unlock()
	eventually(t, "the tile dropped and offered again", func() bool { n, o, _ := peer.state(); return n == 0 && o == 2 })
	if tl := w.Tiles(); len(tl) != 0 {
		t.Fatalf("tiles after the device went: %+v", tl)
	}
}
