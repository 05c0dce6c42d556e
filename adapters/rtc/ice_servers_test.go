package rtc

import (
	"testing"

	"mediasvc/domain"
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
	if w := tp.iceServers(); len(w) != 1 || w[0].URLs[0] != "turn:new.example:3478" {
		t.Fatalf("servers for new peers = %+v", w)
	}
}
