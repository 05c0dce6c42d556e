package rtc

import (
	"testing"
	"time"

	"mediasvc/domain"
	"mediasvc/ports"
)

// TestSetICEServers checks that a reload's servers are what clients are
// handed from then on, and that the caller's slices are not shared.
func TestSetICEServers(t *testing.T) {
	tp, err := New(Config{ICEServers: []domain.ICEServer{{URLs: []string{"stun:old.example:3478"}}}}, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	in := []domain.ICEServer{{URLs: []string{"turn:new.example:3478"}, Username: "u", Credential: "c"}}
	tp.SetICEServers(in)
	in[0].URLs[0] = "changed"
	got := tp.ICEServers()
	if len(got) != 1 || got[0].URLs[0] != "turn:new.example:3478" || got[0].Username != "u" {
		t.Fatalf("ICEServers after SetICEServers = %+v", got)
	}
	if w := tp.iceServers(ports.PeerOptions{}); len(w) != 1 || w[0].URLs[0] != "turn:new.example:3478" {
		t.Fatalf("servers for new peers = %+v", w)
	}
}

// TestICEServersWithSecret: a TURN REST server keeps its secret in the
// transport (the app mints each session's credentials from it), never
// reaches pion without minted credentials, and a peer's own servers
// replace the transport's.
func TestICEServersWithSecret(t *testing.T) {
	tp, err := New(Config{ICEServers: []domain.ICEServer{
		{URLs: []string{"stun:stun.example:3478"}},
		{URLs: []string{"turn:rest.example:3478"}, Secret: "s3cret-s3cret-s3cret"},
	}}, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	if got := tp.ICEServers(); len(got) != 2 || got[1].Secret != "s3cret-s3cret-s3cret" {
		t.Fatalf("ICEServers = %+v, want the secret kept for minting", got)
	}
	if w := tp.iceServers(ports.PeerOptions{}); len(w) != 1 || w[0].URLs[0] != "stun:stun.example:3478" {
		t.Fatalf("servers for a peer without minted ones = %+v, want the STUN server only", w)
	}
	minted := domain.ICEServersFor(tp.ICEServers(), "s1", time.Unix(1700000000, 0))
	w := tp.iceServers(ports.PeerOptions{ICEServers: minted})
	if len(w) != 2 || w[1].Username != "1700000000:s1" || w[1].Credential != minted[1].Credential || w[1].Credential == "" {
		t.Fatalf("servers for a peer with minted ones = %+v", w)
	}
}
