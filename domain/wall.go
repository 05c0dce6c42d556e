package domain

// Tile states, as the wall's page shows them.
const (
	TileStarting    = "starting"    // its stream is opening
	TilePlaying     = "playing"     // on the connection, sending
	TilePaused      = "paused"      // on the connection, out of view: nothing sent
	TileUnavailable = "unavailable" // its stream could not start (Error says why); retried
	TileElsewhere   = "elsewhere"   // another instance captures it (Instance): open it there
)

// WallEvent is what a wall tells its page: its tiles ("tiles"), an offer
// with the tiles' mids ("offer"), a local candidate ("candidate") or the
// connection's state ("state").
type WallEvent struct {
	Type      string
	SDP       string
	Tiles     []WallTile
	Candidate *Candidate
	State     string
}

// WallTile is one tile as the page sees it.
type WallTile struct {
	Device   DeviceID `json:"device_id"`
	Name     string   `json:"name,omitempty"`
	State    string   `json:"state"`
	Mid      string   `json:"mid,omitempty"`
	Width    int      `json:"width,omitempty"`  // the tile's picture
	Height   int      `json:"height,omitempty"` // the tile's picture
	DeviceW  int      `json:"device_width,omitempty"`
	DeviceH  int      `json:"device_height,omitempty"`
	Instance string   `json:"instance,omitempty"`
	Error    string   `json:"error,omitempty"`
	// PacketsSent and FramesSent count what the tile's track has sent
	// (in "tiles" events pushed by WallStats).
	PacketsSent uint64 `json:"packets_sent"`
	FramesSent  uint64 `json:"frames_sent"`
}
