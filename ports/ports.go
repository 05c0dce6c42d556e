// Package ports declares the driven interfaces the app layer calls. Each has
// more than one implementation today (an adapter and a fake at least), and
// each is written in domain types only.
package ports

import (
	"context"
	"io"
	"time"

	"mediasvc/domain"
)

// SessionStore keeps sessions. Implementations: memstore, redisstore.
type SessionStore interface {
	// Create stores s if no session with its id exists and q allows one more
	// session in total, for s.DeviceID and for s.Owner. It returns
	// domain.ErrSessionExists or domain.ErrLimitExceeded (wrapped, naming the
	// limit) otherwise, and then stores nothing.
	Create(ctx context.Context, s domain.Session, q domain.Quota) error
	// Get returns the session or domain.ErrSessionNotFound.
	Get(ctx context.Context, id domain.SessionID) (domain.Session, error)
	// Update applies fn to the stored session atomically and stores the
	// result, re-indexing its expiry. If fn returns an error nothing is
	// stored and that error is returned. domain.ErrSessionNotFound if absent.
	Update(ctx context.Context, id domain.SessionID, fn func(*domain.Session) error) (domain.Session, error)
	// Touch extends the session's life to its TTL after now.
	// domain.ErrSessionNotFound if absent.
	Touch(ctx context.Context, id domain.SessionID, now time.Time) error
	// Delete removes the session and returns what it was.
	// domain.ErrSessionNotFound if absent.
	Delete(ctx context.Context, id domain.SessionID) (domain.Session, error)
	// PopExpired removes and returns up to max sessions whose ExpiresAt is
	// not after now, earliest first. Its cost is O(k log n) for k returned,
	// never a scan of the store.
	PopExpired(ctx context.Context, now time.Time, max int) ([]domain.Session, error)
	// Count returns how many sessions are stored.
	Count(ctx context.Context) (int, error)
}

// ScreenSource lists devices and captures their screens. Implementations:
// demo, adb.
type ScreenSource interface {
	// Devices lists the devices the source knows now.
	Devices(ctx context.Context) ([]domain.Device, error)
	// Device returns one device or domain.ErrDeviceNotFound.
	Device(ctx context.Context, id domain.DeviceID) (domain.Device, error)
	// Open starts a capture of the device. It returns
	// domain.ErrDeviceNotFound if no such device exists and
	// domain.ErrDeviceUnavailable if it cannot stream now. The caller must
	// Close the capture; cancelling ctx does not close it.
	Open(ctx context.Context, id domain.DeviceID, opts domain.CaptureOptions) (Capture, error)
}

// Capture is a running capture of one device.
type Capture interface {
	// Info describes the stream. Its codecs do not change over a
	// capture's life; its size may, at a keyframe (a rotated device whose
	// encoder restarts), and callers read it again there. Safe to call
	// concurrently with ReadFrame.
	Info() domain.StreamInfo
	// ReadFrame blocks until the next frame, in presentation order, and
	// paces real time (the demo source sleeps; a device is paced by nature).
	// The first video frame is a keyframe. It returns io.EOF when the capture
	// ended, ctx.Err() when ctx is done, or another error when it failed.
	// It is called from one goroutine only.
	ReadFrame(ctx context.Context) (domain.Frame, error)
	// RequestKeyframe asks the source for a keyframe soon. It never blocks;
	// sources that cannot produce one on demand ignore it.
	RequestKeyframe()
	// SetBitrate asks for a new target bitrate; sources that cannot change
	// it ignore it.
	SetBitrate(bps int)
	// Close stops the capture and releases what it holds; ReadFrame then
	// returns an error. It is safe to call more than once and concurrently
	// with ReadFrame.
	Close() error
}

// DeviceInput delivers a controller's input to a device.
type DeviceInput interface {
	// Input injects ev, already validated and in device coordinates.
	// domain.ErrDeviceNotFound / ErrDeviceUnavailable on failure.
	Input(ctx context.Context, id domain.DeviceID, ev domain.InputEvent) error
}

// Transport makes WebRTC peers that carry one device's stream to viewers.
// Implementation: rtc.
type Transport interface {
	// NewFanout prepares the shared packetizer and packet ring for one
	// device's stream. The caller must Close it.
	NewFanout(device domain.DeviceID, info domain.StreamInfo) (Fanout, error)
	// NewPeer returns a viewer peer that will send f's media once
	// negotiated. f must come from the same Transport. The caller must Close
	// the peer.
	NewPeer(ctx context.Context, f Fanout, opts PeerOptions) (Peer, error)
	// ICEServers returns the configured STUN/TURN servers. One with a
	// Secret (TURN REST) must get a session's credentials
	// (domain.ICEServersFor) before it is handed out or used.
	ICEServers() []domain.ICEServer
	// Negotiate returns the rendition of a stream described by info that
	// a viewer's offer takes: domain.RenditionOriginal when it decodes
	// info's codec and profile, else the first of renditions it decodes.
	// domain.ErrInvalidOffer (wrapped) for an offer that is malformed or
	// has no video; a *domain.NoCommonCodecError (errors.Is
	// domain.ErrNoCommonCodec) when it takes none of them.
	Negotiate(offer string, info domain.StreamInfo, renditions []domain.Rendition) (domain.Rendition, error)
}

// Transcoders make renditions of a device's stream (VP8, Constrained
// Baseline H.264) for viewers that cannot take the original. The hub runs
// at most one Transcoder per device and rendition. Implementation:
// transcode (ffmpeg); without one only the original is served.
type Transcoders interface {
	// Renditions lists the renditions Start can make.
	Renditions() []domain.Rendition
	// Start runs a transcoder making rendition r of a stream described
	// by in. Errors wrap domain.ErrUnavailable when it cannot run. The
	// caller must Close the Transcoder.
	Start(r domain.Rendition, in domain.StreamInfo) (Transcoder, error)
}

// Transcoder is one running rendition of one stream: fed the source's
// access units with Write (from the capture pump), read like a capture
// (from the rendition's pump). Its Info is the rendition's: its codec,
// the source's size and audio codec; it makes video only (the source's
// audio is passed on as it is by the caller). RequestKeyframe makes the
// rendition's next frame a keyframe, without the source's help; besides,
// it has one every couple of seconds.
type Transcoder interface {
	Capture
	// Write hands one video access unit of the source to the transcoder
	// without blocking (audio is ignored); when the transcoder falls
	// behind it drops input up to the next source keyframe. It returns an
	// error after Close.
	Write(f domain.Frame) error
	// NeedsSourceKeyframe reports whether the transcoder drops input
	// until the source's next keyframe: until then RequestKeyframe cannot
	// help and the source must be asked.
	NeedsSourceKeyframe() bool
}

// Fanout is one device stream packetized once and read by many peers.
type Fanout interface {
	// WriteFrame packetizes f into the shared ring and wakes the viewers.
	// It is called from one goroutine (the capture pump) only.
	WriteFrame(f domain.Frame) error
	// KeyframeRequests delivers one signal per burst of viewers' requests
	// (PLI/FIR, late joiners with no cached keyframe): it is coalesced.
	KeyframeRequests() <-chan struct{}
	// RequestKeyframe adds a request to KeyframeRequests (coalesced with
	// the viewers' own). It never blocks.
	RequestKeyframe()
	// ProfileLevelID returns the H.264 profile-level-id of the latest SPS
	// the stream carried ("" for VP8, or before any SPS): what a new
	// viewer's offer must take.
	ProfileLevelID() string
	// Viewers returns the number of peers attached.
	Viewers() int
	// Stats returns the aggregated quality of the attached viewers (worst
	// loss, highest RTT) for the bitrate policy.
	Stats() domain.QualityStats
	// Close detaches every peer from the stream and frees the ring.
	Close() error
}

// PeerState is a change in a peer's connection.
type PeerState string

// Peer states, mapped from ICE/DTLS connection states.
const (
	PeerConnecting   PeerState = "connecting"
	PeerConnected    PeerState = "connected"
	PeerDisconnected PeerState = "disconnected"
	PeerFailed       PeerState = "failed"
	PeerClosed       PeerState = "closed"
)

// PeerOptions configures one viewer peer.
type PeerOptions struct {
	Session domain.SessionID
	Limits  domain.ICELimits
	// ICEServers are the STUN/TURN servers the peer's own agent uses,
	// credentials minted (domain.ICEServersFor); nil means the
	// transport's, less any that need minted credentials.
	ICEServers []domain.ICEServer
	// Trickle: when true Answer returns at once and local candidates are
	// delivered to OnCandidate; when false Answer waits (bounded by ctx)
	// until candidate gathering completes and the answer carries them all.
	Trickle bool
	// OnCandidate receives local candidates when trickling; a nil-candidate
	// end marker is delivered as an empty Candidate string. May be nil.
	OnCandidate func(domain.Candidate)
	// OnState receives connection state changes. May be nil. It must not
	// block.
	OnState func(PeerState)
	// OnFirstFrame is called once, when the first video frame has been
	// sent to the viewer. May be nil. It must not block.
	OnFirstFrame func()
}

// Peer is one viewer's WebRTC connection.
type Peer interface {
	// Answer applies the remote offer and returns the local answer SDP.
	// domain.ErrInvalidOffer (wrapped) when the offer is malformed or offers
	// no codec we send.
	Answer(ctx context.Context, offer string) (string, error)
	// AddCandidate adds a remote candidate. domain.ErrTooManyCandidates
	// past the limit, domain.ErrInvalidCandidate when malformed; the peer
	// is unchanged then.
	AddCandidate(c domain.Candidate) error
	// Stats returns the connection's current quality.
	Stats() domain.QualityStats
	// Close tears the peer down and releases everything it holds. Safe to
	// call more than once.
	Close() error
}

// Clock tells the time and runs every timer of app (session TTL checks and
// keepalives, expiry reaping, capture grace and reopen backoff, the bitrate
// interval, lease renewal, holder checks); tests use portstest.Clock, which
// moves only when told.
type Clock interface {
	Now() time.Time
	// NewTimer returns a timer whose C delivers the time once, d from now.
	NewTimer(d time.Duration) Timer
	// AfterFunc calls f on its own goroutine d from now, unless stopped
	// first; the timer's C is nil.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is one pending event of a Clock.
type Timer interface {
	// C delivers the time when the timer fires (nil for AfterFunc).
	C() <-chan time.Time
	// Reset re-arms the timer for d from now, dropping a time not yet
	// received; it reports whether the timer was pending.
	Reset(d time.Duration) bool
	// Stop cancels the timer; it reports whether it was pending.
	Stop() bool
}

// RateLimiter decides whether an action keyed by key may happen now.
// Implementations: an in-memory token bucket (memstore), a Redis GCRA
// shared by every instance (redisstore).
type RateLimiter interface {
	// Allow takes one token for key. When none is left it returns a
	// *domain.RateLimitError (errors.Is domain.ErrRateLimited) saying when
	// to retry. Other errors mean the limiter itself failed.
	Allow(ctx context.Context, key string) error
}

// InstanceRegistry lists the instances sharing a session store.
// Implementation: redisstore.Registry; without one the app knows only
// itself.
type InstanceRegistry interface {
	// Instances returns the live instances. Errors wrap
	// domain.ErrUnavailable when the registry cannot be read.
	Instances(ctx context.Context) ([]domain.Instance, error)
}

// Bus carries signaling between instances that share a store: calls to
// the instance holding a session's peer (or a device's lease), with their
// replies, and a session's events to whichever instance holds its
// WebSocket. It speaks domain types; the wire format is the
// implementation's. Implementation: redisstore.Bus (Redis pub/sub); without
// one, a session is served only by the instance that created it.
type Bus interface {
	// Call sends req to instance and returns its reply, waiting at most
	// until ctx ends. The error the remote handler returned comes back
	// with its domain identity (errors.Is a domain sentinel, or a
	// *domain.RateLimitError); a bus failure or an instance that does not
	// listen returns an error wrapping domain.ErrUnavailable, and one
	// wrapping ctx.Err() when ctx ends first.
	Call(ctx context.Context, instance string, req domain.BusRequest) (domain.BusReply, error)
	// Serve hands each request addressed to this instance to handle, in
	// its own goroutine (a bounded number at once), and sends back what
	// handle returns, until ctx is done. Replies to this instance's own
	// calls never wait behind the requests it serves.
	Serve(ctx context.Context, handle func(ctx context.Context, req domain.BusRequest) (domain.BusReply, error)) error
	// Publish sends ev to the current subscribers of topic, a topic
	// another instance's Subscribe returned. It does not wait for them.
	Publish(ctx context.Context, topic string, ev domain.SessionEvent) error
	// Subscribe opens a new topic of this instance's own and delivers the
	// events published to it to fn, in order, until the returned cancel is
	// called; once cancel returns fn is not called again. Events published
	// after Subscribe returns are delivered. fn must not block and must
	// not call cancel. Errors wrap domain.ErrUnavailable, or ctx's.
	Subscribe(ctx context.Context, fn func(domain.SessionEvent)) (topic string, cancel func(), err error)
}

// DeviceLeases decides which instance captures a device: at most one
// holds a device's lease at a time, for a TTL it renews. Implementation:
// redisstore.Leases; without one every instance captures what it sees.
type DeviceLeases interface {
	// Acquire takes the device's lease for holder, or renews it if holder
	// has it (same token). domain.ErrConflict when another holds it.
	Acquire(ctx context.Context, device domain.DeviceID, holder string) (domain.Lease, error)
	// Renew extends the lease; domain.ErrConflict once it was lost.
	Renew(ctx context.Context, l domain.Lease) error
	// Release gives the lease up if still held.
	Release(ctx context.Context, l domain.Lease) error
	// Holder returns the instance holding the device's lease, "" if none.
	Holder(ctx context.Context, device domain.DeviceID) (string, error)
}

// FarmStore keeps each device's control state and reservations, shared by
// every instance in multi-instance mode. Implementations: memstore.Farm,
// redisstore.Farm. Updates are read-modify-write: the store loads the
// current value, calls fn on a copy, and stores the result only if no
// other writer changed the value meanwhile; otherwise it calls fn again on
// the newer value. fn must therefore be pure (no I/O, no side effects
// other than on its argument) and may run more than once.
type FarmStore interface {
	// Control returns the device's control state; a device no one
	// controls has an empty one (never an error for that).
	Control(ctx context.Context, device domain.DeviceID) (domain.Control, error)
	// UpdateControl applies fn to the device's control state and stores
	// the result; an empty state is deleted. If fn returns an error,
	// nothing is stored and that error is returned. Errors wrapping
	// domain.ErrUnavailable mean the store failed or kept conflicting.
	UpdateControl(ctx context.Context, device domain.DeviceID, fn func(*domain.Control) error) (domain.Control, error)
	// Reservations returns the device's reservations, ended ones
	// included until the store forgets them (at their Until at the
	// latest); an unreserved device has an empty list.
	Reservations(ctx context.Context, device domain.DeviceID) (domain.Reservations, error)
	// UpdateReservations applies fn to the device's reservations like
	// UpdateControl; the stored list lives until its last Until.
	UpdateReservations(ctx context.Context, device domain.DeviceID, fn func(*domain.Reservations) error) (domain.Reservations, error)
	// ReservedDevices lists the devices that may have reservations: every
	// device with one that has not ended, possibly some whose last one
	// just did.
	ReservedDevices(ctx context.Context) ([]domain.DeviceID, error)
}

// AuditLog records who did what to which device, bounded in size: the
// oldest events are forgotten first. Implementations: memstore.Audit (a
// ring), redisstore.Audit (a stream trimmed with MAXLEN ~).
type AuditLog interface {
	// Record appends e, assigning its ID. Errors wrap domain.ErrUnavailable.
	Record(ctx context.Context, e domain.AuditEvent) error
	// Query returns the newest f.Count() events f matches, oldest first.
	Query(ctx context.Context, f domain.AuditFilter) ([]domain.AuditEvent, error)
}

// Notifier tells outside systems about farm events (webhooks). Notify
// never blocks: a notifier that cannot keep up drops and counts.
// Implementation: webhook.Notifier; without one nothing is told.
type Notifier interface {
	Notify(n domain.Notice)
}

// DeviceFiles moves files to and from a device. Implementation: adb; a
// source without it (the demo) takes no files.
type DeviceFiles interface {
	// PushFile streams size bytes of r to the device's Download folder
	// under a name made safe from name, and returns the path written.
	// domain.ErrInvalidRequest when the name is unusable or the body is
	// not size bytes; ErrDeviceNotFound / ErrDeviceUnavailable otherwise.
	PushFile(ctx context.Context, id domain.DeviceID, name string, r io.Reader, size int64) (string, error)
	// InstallAPK streams size bytes of r to the package manager. A refused
	// package is domain.ErrInvalidRequest carrying its verdict.
	InstallAPK(ctx context.Context, id domain.DeviceID, r io.Reader, size int64) error
	// Screenshot returns a PNG of the device's screen.
	Screenshot(ctx context.Context, id domain.DeviceID) ([]byte, error)
}

// RecordingStore keeps MP4 recordings of device streams as files.
// Implementation: mp4rec; app's tests use a fake.
type RecordingStore interface {
	// Create starts the file of recording rec (its ID chosen by the
	// caller, domain.ErrInvalidRequest if not Valid) of a stream described
	// by info. The caller must Close the writer.
	Create(rec domain.Recording, info domain.StreamInfo) (RecordingWriter, error)
	// List returns every recording in the store, running ones included,
	// oldest first.
	List() ([]domain.Recording, error)
	// Get returns one recording or domain.ErrRecordingNotFound.
	Get(id domain.RecordingID) (domain.Recording, error)
	// Open returns the recording's bytes (for a running one, up to its
	// last complete fragment) and its metadata; the caller must Close it.
	// domain.ErrRecordingNotFound when absent.
	Open(id domain.RecordingID) (io.ReadSeekCloser, domain.Recording, error)
	// Delete removes a recording that is not running:
	// domain.ErrRecordingNotFound when absent, domain.ErrConflict while
	// it records.
	Delete(id domain.RecordingID) error
}

// RecordingWriter writes one recording. It is used from one goroutine.
type RecordingWriter interface {
	// WriteFrame adds a frame of the stream; frames before the first
	// video keyframe are dropped. Its PTS is on the stream's timeline.
	WriteFrame(f domain.Frame) error
	// Recording returns the metadata so far (bytes and duration of the
	// complete fragments).
	Recording() domain.Recording
	// Close writes what is pending, ends the file with reason and
	// returns the final metadata. It is safe to call more than once.
	Close(reason string) (domain.Recording, error)
}

// WallTransport makes the PeerConnections of device walls: one per wall,
// a video transceiver per tile. Implementation: rtc; without one the
// service has no wall.
type WallTransport interface {
	// NewWall returns a wall peer with no tile. opts.OnFirstFrame is not
	// used; OnCandidate and OnState are. The caller must Close it.
	NewWall(ctx context.Context, opts PeerOptions) (WallPeer, error)
}

// WallPeer is one device wall's PeerConnection. The server makes every
// offer (Offer), the browser answers (Answer); tiles added or removed
// take effect at the next Offer. Methods are safe to call concurrently.
type WallPeer interface {
	// AddTile adds a sendonly video transceiver under key carrying f's
	// video (f from the same transport). domain.ErrConflict when key is
	// taken; domain.ErrInvalidRequest when f is foreign or carries no
	// codec the wall sends.
	AddTile(key string, f Fanout) error
	// RemoveTile stops the tile's track and detaches it from its fanout;
	// its m-line goes inactive at the next Offer. An unknown key is
	// ignored.
	RemoveTile(key string)
	// PauseTile stops (true) or resumes (false) sending the tile's
	// packets; a resumed tile starts again at its stream's latest
	// keyframe. domain.ErrInvalidRequest for an unknown key.
	PauseTile(key string, paused bool) error
	// Offer makes the next offer, sets it locally and returns it with the
	// mid of every tile's transceiver (key → mid).
	Offer(ctx context.Context) (sdp string, mids map[string]string, err error)
	// Answer applies the browser's answer to the last Offer.
	// domain.ErrInvalidOffer (wrapped) when it is malformed or does not
	// answer that offer.
	Answer(ctx context.Context, sdp string) error
	// AddCandidate adds a remote candidate, within opts.Limits:
	// domain.ErrTooManyCandidates, domain.ErrInvalidCandidate.
	AddCandidate(c domain.Candidate) error
	// TileStats returns what the tile's track has sent, false for an
	// unknown key.
	TileStats(key string) (domain.QualityStats, bool)
	// Close tears the wall down with every tile. Safe to call more than once.
	Close() error
}

// DeviceClipboard tells of changes of a device's clipboard (scrcpy's
// clipboard autosync). Implementation: adb; app's tests use a fake.
type DeviceClipboard interface {
	// WatchClipboard calls fn with the device and its new clipboard text
	// on every change, until the returned cancel is called. fn must not
	// block; it may be called from several goroutines.
	WatchClipboard(fn func(id domain.DeviceID, text string)) (cancel func())
}

// Keyframes gives the latest keyframe of a device that has no screenshot
// of its own. Implementation: demo; app's tests use a fake.
type Keyframes interface {
	// Keyframe returns the device's latest H.264 keyframe, Annex-B with
	// its SPS and PPS. domain.ErrDeviceNotFound for an unknown device.
	Keyframe(ctx context.Context, id domain.DeviceID) ([]byte, error)
}

// StillDecoder decodes one keyframe to a picture. Implementation:
// transcode (ffmpeg); app's tests use a fake.
type StillDecoder interface {
	// DecodeStill returns a PNG of the keyframe au. domain.ErrUnavailable
	// when the decoder cannot run (or runs too long, or writes too much),
	// domain.ErrInvalidRequest when au holds no picture.
	DecodeStill(ctx context.Context, au []byte) ([]byte, error)
}
