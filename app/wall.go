package app

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"mediasvc/domain"
	"mediasvc/ports"
)

// The device wall: every device its owner may see as a live tile, all on
// one PeerConnection. Each tile watches its device's wall stream, shared
// by every wall's tile of that device: a second, small capture from the
// device itself where the source has one (Source.Secondary: adb's
// screenrecord --size), else the wall rendition of the device's capture
// (the demo, through the transcoder). Devices that come or go while the
// wall is open add or drop a tile and the server offers again; a tile out
// of the page's viewport is paused and costs no packets.

// Wall timing and bounds.
const (
	// wallRefresh is how often a wall looks for devices that came or went.
	wallRefresh = time.Second
	// wallRetry is how long a tile whose stream could not start waits
	// before the next try.
	wallRetry = 5 * time.Second
	// WallMaxTiles bounds the tiles of one wall.
	WallMaxTiles = 100
)

// WallOptions open a wall.
type WallOptions struct {
	// ID names the wall in logs and its peer.
	ID string
	// Visible reports whether the wall's owner may see the device (its
	// grants, reservations that hide it). It is called for every device
	// at every refresh and must not block for long.
	Visible func(ctx context.Context, d domain.Device) bool
	// Notify receives the wall's events; it must not block.
	Notify func(domain.WallEvent)
	// ICEServers are the STUN/TURN servers of the wall's agent (nil: the
	// transport's).
	ICEServers []domain.ICEServer
}

// Wall is one open device wall. Its goroutines are the refresh loop and
// one per tile whose stream is opening; Close ends them.
type Wall struct {
	s    *Service
	opts WallOptions
	peer ports.WallPeer
	log  *slog.Logger

	ctx    context.Context // the wall's life
	cancel context.CancelFunc
	kick   chan struct{} // capacity 1: look at offers now
	wg     sync.WaitGroup

	mu       sync.Mutex // guards what follows; never held across I/O
	tiles    map[domain.DeviceID]*wallTile
	hidden   map[domain.DeviceID]bool // out of the page's viewport
	awaiting bool                     // an offer is out without its answer
	dirty    bool                     // the connection's tiles changed since the last offer
	closed   bool

	closeOnce sync.Once
}

type wallTile struct {
	dev      domain.Device
	state    string
	mid      string
	info     domain.StreamInfo
	err      string
	instance string
	failed   time.Time
	onPeer   bool
	release  func()
}

// AttachWall adds a tile viewer of device id's wall stream and returns
// its fanout and info; release must be called exactly once. A source
// with secondary captures gets a capture of its own at the wall's size
// (shared by every tile of the device, stopped Grace after the last); any
// other gets the wall rendition of the device's capture. Errors as Attach
// and AttachRendition: domain.ErrDeviceUnavailable (wrapped) when neither
// can run.
func (h *Hub) AttachWall(ctx context.Context, id domain.DeviceID) (ports.Fanout, domain.StreamInfo, func(), error) {
	src, err := h.sources.lookup(ctx, id)
	if err != nil {
		return nil, domain.StreamInfo{}, nil, err
	}
	if src.Secondary {
		return h.attach(ctx, id, true)
	}
	_, _, release, err := h.Attach(ctx, id)
	if err != nil {
		return nil, domain.StreamInfo{}, nil, err
	}
	f, info, rrelease, err := h.AttachRendition(ctx, id, domain.RenditionWall)
	if err != nil {
		release()
		return nil, domain.StreamInfo{}, nil, err
	}
	return f, info, func() { rrelease(); release() }, nil
}

// WallViewers returns how many tiles watch device id's wall stream on
// this instance.
func (h *Hub) WallViewers(id domain.DeviceID) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if st, ok := h.walls[id]; ok {
		return st.viewers
	}
	if st, ok := h.streams[id]; ok {
		if rd, ok := st.renditions[domain.RenditionWall]; ok {
			return rd.viewers
		}
	}
	return 0
}

// OpenWall opens a device wall. Its first tiles appear at once; the first
// offer follows when the first tile's stream runs. The caller must Close
// it. domain.ErrUnavailable when the service has no wall transport,
// domain.ErrDraining while draining.
func (s *Service) OpenWall(ctx context.Context, opts WallOptions) (*Wall, error) {
	if s.deps.Walls == nil {
		return nil, fmt.Errorf("open wall: no wall transport: %w", domain.ErrUnavailable)
	}
	if s.draining.Load() {
		return nil, fmt.Errorf("open wall: %w", domain.ErrDraining)
	}
	if opts.Visible == nil || opts.Notify == nil {
		return nil, fmt.Errorf("open wall: Visible and Notify are required: %w", domain.ErrInvalidRequest)
	}
	w := &Wall{s: s, opts: opts, log: s.log.With("wall", opts.ID), kick: make(chan struct{}, 1),
		tiles: make(map[domain.DeviceID]*wallTile), hidden: make(map[domain.DeviceID]bool)}
	peer, err := s.deps.Walls.NewWall(ctx, ports.PeerOptions{
		Session: domain.SessionID(opts.ID), Limits: s.cfg.ICE, ICEServers: opts.ICEServers, Trickle: true,
		OnCandidate: func(c domain.Candidate) {
			w.opts.Notify(domain.WallEvent{Type: "candidate", Candidate: &c})
		},
		OnState: func(st ports.PeerState) { w.opts.Notify(domain.WallEvent{Type: "state", State: string(st)}) },
	})
	if err != nil {
		return nil, fmt.Errorf("open wall: %w", err)
	}
	w.peer = peer
	w.ctx, w.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.m.walls.Add(ctx, 1)
	w.wg.Add(1)
	go w.loop()
	return w, nil
}

// loop refreshes the tiles every wallRefresh and makes offers when
// kicked, until Close.
func (w *Wall) loop() {
	defer w.wg.Done()
	t := w.s.deps.Clock.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-w.ctx.Done():
			return
		case <-t.C():
			w.refresh()
			t.Reset(wallRefresh)
		case <-w.kick:
		}
		w.maybeOffer()
	}
}

func (w *Wall) poke() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// refresh adds a tile for every visible device without one (or whose
// stream failed a while ago) and drops those of devices gone or hidden.
func (w *Wall) refresh() {
	ctx, cancel := context.WithTimeout(w.ctx, 5*time.Second)
	defer cancel()
	devs, err := w.s.src.devices(ctx)
	if err != nil {
		w.log.Debug("wall: list devices", "err", err)
		return
	}
	want := make(map[domain.DeviceID]domain.Device, len(devs))
	for _, d := range devs {
		if d.State != "" && d.State != domain.DeviceOnline {
			continue
		}
		if len(want) < WallMaxTiles && w.opts.Visible(ctx, d) {
			want[d.ID] = d
		}
	}
	now := w.s.deps.Clock.Now()
	var gone []*wallTile
	var start []domain.Device
	changed := false
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	for id, tl := range w.tiles {
		if _, ok := want[id]; !ok {
			gone = append(gone, tl)
			delete(w.tiles, id)
			changed = true
		}
	}
	for id, d := range want {
		tl, ok := w.tiles[id]
		switch {
		case !ok:
			w.tiles[id] = &wallTile{dev: d, state: domain.TileStarting}
			start = append(start, d)
			changed = true
		case tl.state == domain.TileUnavailable && now.Sub(tl.failed) >= wallRetry:
			tl.state, tl.err = domain.TileStarting, ""
			start = append(start, d)
			changed = true
		default:
			tl.dev = d
		}
	}
	w.mu.Unlock()
	for _, tl := range gone {
		w.dropTile(tl)
	}
	for _, d := range start {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			w.startTile(d)
		}()
	}
	if changed {
		w.notifyTiles()
	}
}

// startTile opens the device's wall stream, or finds which instance
// captures it, and puts its tile on the connection.
func (w *Wall) startTile(d domain.Device) {
	holder, err := w.s.ownerOf(w.ctx, d.ID)
	if err == nil && holder != "" && holder != w.s.cfg.Instance {
		w.setTile(d.ID, func(tl *wallTile) { tl.state, tl.instance = domain.TileElsewhere, holder })
		return
	}
	var f ports.Fanout
	var info domain.StreamInfo
	var release func()
	if err == nil {
		f, info, release, err = w.s.hub.AttachWall(w.ctx, d.ID)
	}
	if err == nil {
		err = w.peer.AddTile(string(d.ID), f)
		if err != nil {
			release()
		}
	}
	if err != nil {
		if w.ctx.Err() == nil {
			w.log.Warn("wall tile unavailable", "device_id", d.ID, "err", err)
		}
		w.setTile(d.ID, func(tl *wallTile) {
			tl.state, tl.err, tl.failed = domain.TileUnavailable, err.Error(), w.s.deps.Clock.Now()
		})
		return
	}
	w.mu.Lock()
	tl, ok := w.tiles[d.ID]
	if !ok || w.closed || tl.state != domain.TileStarting {
		// Gone (or the wall closed) while it opened.
		w.mu.Unlock()
		w.peer.RemoveTile(string(d.ID))
		release()
		return
	}
	tl.info, tl.release, tl.onPeer = info, release, true
	tl.state = domain.TilePlaying
	if w.hidden[d.ID] {
		tl.state = domain.TilePaused
		_ = w.peer.PauseTile(string(d.ID), true)
	}
	w.tileMetric(tl.state, 1)
	w.dirty = true
	w.mu.Unlock()
	w.notifyTiles()
	w.poke()
}

// setTile changes a tile still on the wall and tells the page.
func (w *Wall) setTile(id domain.DeviceID, fn func(*wallTile)) {
	w.mu.Lock()
	tl, ok := w.tiles[id]
	if ok && !w.closed {
		fn(tl)
	}
	w.mu.Unlock()
	if ok {
		w.notifyTiles()
	}
}

// dropTile takes a removed tile off the connection and releases its
// stream.
func (w *Wall) dropTile(tl *wallTile) {
	if !tl.onPeer {
		return // still starting: startTile cleans up
	}
	w.peer.RemoveTile(string(tl.dev.ID))
	tl.release()
	w.mu.Lock()
	w.tileMetric(tl.state, -1)
	w.dirty = true
	w.mu.Unlock()
	w.poke()
}

// tileMetric counts a tile on the connection in or out of its state.
func (w *Wall) tileMetric(state string, n int64) {
	if state == domain.TilePlaying || state == domain.TilePaused {
		w.s.m.wallTiles.Add(context.Background(), n, metric.WithAttributes(attribute.String("state", state)))
	}
}

// maybeOffer makes an offer when the connection's tiles changed and no
// offer waits for its answer.
func (w *Wall) maybeOffer() {
	w.mu.Lock()
	if w.closed || w.awaiting || !w.dirty {
		w.mu.Unlock()
		return
	}
	w.awaiting, w.dirty = true, false
	w.mu.Unlock()
	ctx, cancel := context.WithTimeout(w.ctx, 10*time.Second)
	defer cancel()
	sdp, mids, err := w.peer.Offer(ctx)
	if err != nil {
		w.s.m.wallOffers.Add(w.ctx, 1, metric.WithAttributes(attribute.String("outcome", "failed")))
		w.log.Warn("wall offer failed", "err", err)
		w.mu.Lock()
		w.awaiting, w.dirty = false, true
		w.mu.Unlock()
		return
	}
	w.mu.Lock()
	for id, tl := range w.tiles {
		tl.mid = mids[string(id)]
	}
	w.mu.Unlock()
	w.opts.Notify(domain.WallEvent{Type: "offer", SDP: sdp, Tiles: w.Tiles()})
}

// Answer applies the page's answer to the wall's last offer; tiles that
// changed meanwhile get the next offer at once. domain.ErrInvalidOffer
// (wrapped) for an answer that does not fit.
func (w *Wall) Answer(ctx context.Context, sdp string) error {
	sdp, _, _, _ = w.s.cfg.Candidates.FilterSDP(sdp)
	err := w.peer.Answer(ctx, sdp)
	outcome := "answered"
	if err != nil {
		outcome = "failed"
	}
	w.s.m.wallOffers.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", outcome)))
	if err != nil {
		return err
	}
	w.mu.Lock()
	w.awaiting = false
	w.mu.Unlock()
	w.poke()
	return nil
}

// AddCandidate adds the page's ICE candidate (limits as a session's).
func (w *Wall) AddCandidate(c domain.Candidate) error {
	if err := w.s.cfg.Candidates.Check(c.Candidate); err != nil {
		return err
	}
	return w.peer.AddCandidate(c)
}

// SetVisible pauses (false) or resumes (true) a device's tile as it
// leaves or enters the page's viewport; a resumed tile starts at its
// stream's latest keyframe. It is remembered for a tile still starting.
// domain.ErrInvalidRequest for a device the wall has no tile of.
func (w *Wall) SetVisible(id domain.DeviceID, visible bool) error {
	w.mu.Lock()
	tl, ok := w.tiles[id]
	if !ok {
		w.mu.Unlock()
		return fmt.Errorf("wall has no tile of %q: %w", id, domain.ErrInvalidRequest)
	}
	w.hidden[id] = !visible
	if !tl.onPeer {
		w.mu.Unlock()
		return nil
	}
	next := domain.TilePlaying
	if !visible {
		next = domain.TilePaused
	}
	if tl.state != next {
		w.tileMetric(tl.state, -1)
		w.tileMetric(next, 1)
		tl.state = next
	}
	w.mu.Unlock()
	return w.peer.PauseTile(string(id), !visible)
}

// Tiles returns the wall's tiles, in device order, with what each has
// sent.
func (w *Wall) Tiles() []domain.WallTile {
	w.mu.Lock()
	out := make([]domain.WallTile, 0, len(w.tiles))
	for _, tl := range w.tiles {
		out = append(out, domain.WallTile{Device: tl.dev.ID, Name: tl.dev.Name, State: tl.state, Mid: tl.mid,
			Width: tl.info.Width, Height: tl.info.Height, DeviceW: tl.dev.Width, DeviceH: tl.dev.Height,
			Instance: tl.instance, Error: tl.err})
	}
	w.mu.Unlock()
	for i := range out {
		if st, ok := w.peer.TileStats(string(out[i].Device)); ok {
			out[i].PacketsSent, out[i].FramesSent = st.PacketsSent, st.FramesSent
		}
	}
	slices.SortFunc(out, func(a, b domain.WallTile) int {
		switch {
		case a.Device < b.Device:
			return -1
		case a.Device > b.Device:
			return 1
		}
		return 0
	})
	return out
}

func (w *Wall) notifyTiles() {
	w.opts.Notify(domain.WallEvent{Type: "tiles", Tiles: w.Tiles()})
}

// Close ends the wall: its connection, its tiles and their streams'
// share. Safe to call more than once.
func (w *Wall) Close() {
	w.closeOnce.Do(func() {
		w.mu.Lock()
		w.closed = true
		w.mu.Unlock()
		w.cancel()
		w.wg.Wait()
		_ = w.peer.Close()
		w.mu.Lock()
		tiles := w.tiles
		w.tiles = map[domain.DeviceID]*wallTile{}
		w.mu.Unlock()
		for _, tl := range tiles {
			if tl.onPeer {
				tl.release()
				w.tileMetric(tl.state, -1)
			}
		}
		w.s.m.walls.Add(context.Background(), -1)
	})
}
