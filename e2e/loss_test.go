//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"mediasvc/e2e/client"
)

// lossRelay is a UDP relay between one WebRTC client and the server's single
// UDP port. It forwards everything, except that it drops every n-th RTP
// packet of each SSRC from the server to the client (RTCP, STUN and DTLS
// pass untouched), so the client's receiver reports show a loss of 1/n.
type lossRelay struct {
	front  *net.UDPConn // the client talks to this
	back   *net.UDPConn // connected to the server's port
	every  int
	client atomic.Pointer[net.UDPAddr]
	wg     sync.WaitGroup

	dropped, passed atomic.Int64
}

func startLossRelay(t *testing.T, server *net.UDPAddr, every int) *lossRelay {
	t.Helper()
	front, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	back, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, server)
	if err != nil {
		front.Close()
		t.Fatal(err)
	}
	r := &lossRelay{front: front, back: back, every: every}
	r.wg.Add(2)
	go r.up()
	go r.down()
	t.Cleanup(func() {
		front.Close()
		back.Close()
		r.wg.Wait()
	})
	return r
}

func (r *lossRelay) addr() *net.UDPAddr { return r.front.LocalAddr().(*net.UDPAddr) }

// up forwards client → server and remembers the client's address.
func (r *lossRelay) up() {
	defer r.wg.Done()
	buf := make([]byte, 1<<16)
	for {
		n, from, err := r.front.ReadFromUDP(buf)
		if err != nil {
			return
		}
		r.client.Store(from)
		_, _ = r.back.Write(buf[:n])
	}
}

// down forwards server → client, dropping every n-th RTP packet per SSRC.
func (r *lossRelay) down() {
	defer r.wg.Done()
	buf := make([]byte, 1<<16)
	seen := map[uint32]int{}
	for {
		n, err := r.back.Read(buf)
		if err != nil {
			return
		}
		// RFC 7983 / 5761: RTP and RTCP start with 128..191; RTCP packet
		// types are 192..223 in the second byte.
		if n >= 12 && buf[0] >= 128 && buf[0] <= 191 && (buf[1] < 192 || buf[1] > 223) {
			ssrc := uint32(buf[8])<<24 | uint32(buf[9])<<16 | uint32(buf[10])<<8 | uint32(buf[11])
			seen[ssrc]++
			if seen[ssrc]%r.every == 0 {
				r.dropped.Add(1)
				continue
			}
			r.passed.Add(1)
		}
		if c := r.client.Load(); c != nil {
			_, _ = r.front.WriteToUDP(buf[:n], c)
		}
	}
}

// withoutCandidates removes a=candidate and a=end-of-candidates lines, so
// the other side learns addresses only from connectivity checks.
func withoutCandidates(sdp string) string {
	var out []string
	for _, l := range strings.Split(sdp, "\r\n") {
		if strings.HasPrefix(l, "a=candidate:") || l == "a=end-of-candidates" {
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\r\n")
}

// TestInjectedLossShowsInStatsAndLowersBitrate puts a relay that drops 10%
// of the server's RTP between a pion viewer (which sends receiver reports)
// and the service in single-UDP-port mode. The viewer only knows the
// relay's address and the server learns the viewer's only through the
// relay, so every packet crosses it. The session's stats must show a loss
// of 10 ± 2 points, and the bitrate policy must lower the capture target.
func TestInjectedLossShowsInStatsAndLowersBitrate(t *testing.T) {
	const every = 10 // drop 1 in 10: 10 %
	udpPort := freeUDPPort(t)
	cfg := defaultConfig()
	cfg.set("webrtc", "udp_port", udpPort).
		set("stream", "bitrate_interval", "1s").
		set("metrics", "quality_interval", "1s")
	in := startInstance(t, cfg)
	relay := startLossRelay(t, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: udpPort}, every)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	api, err := client.NewAPI(true) // RTCP receiver reports, no NACKs: loss stays lost
	if err != nil {
		t.Fatal(err)
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	var videoPkts atomic.Int64
	pc.OnTrack(func(tr *webrtc.TrackRemote, rcv *webrtc.RTPReceiver) {
		go func() { // reading RTCP lets the interceptor see sender reports (LSR/DLSR → RTT)
			for {
				if _, _, err := rcv.ReadRTCP(); err != nil {
					return
				}
			}
		}()
		for { // reading drives the receiver-report interceptor
			if _, _, err := tr.ReadRTP(); err != nil {
				return
			}
			if tr.Kind() == webrtc.RTPCodecTypeVideo {
				videoPkts.Add(1)
			}
		}
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	ans, err := client.WHEPOffer(ctx, http.DefaultClient, in.Base, "", "demo", withoutCandidates(pc.LocalDescription().SDP))
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: withoutCandidates(ans.SDP)}); err != nil {
		t.Fatal(err)
	}
	mid := "0"
	if err := pc.AddICECandidate(webrtc.ICECandidateInit{
		Candidate: fmt.Sprintf("candidate:1 1 udp 2130706431 127.0.0.1 %d typ host", relay.addr().Port),
		SDPMid:    &mid,
	}); err != nil {
		t.Fatal(err)
	}
	sessionID := path.Base(ans.Location)

	// Wait for the session's stats to settle on the injected loss, with an
	// RTT measured from the viewer's LSR/DLSR.
	want := 1 / float64(every)
	var st struct {
		LossFraction float64 `json:"loss_fraction"`
		PacketsLost  int64   `json:"packets_lost"`
		PacketsSent  uint64  `json:"packets_sent"`
		RTTMs        float64 `json:"rtt_ms"`
		State        string  `json:"ice_state"`
	}
	var good int
	deadline := time.Now().Add(40 * time.Second)
	for good < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("stats never showed %.0f%% loss: last %+v; relay dropped %d passed %d; viewer got %d video packets",
				want*100, st, relay.dropped.Load(), relay.passed.Load(), videoPkts.Load())
		}
		time.Sleep(time.Second)
		resp, body := do(t, http.MethodGet, in.Base+"/api/v1/sessions/"+sessionID+"/stats", "", nil, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("stats: %d %s", resp.StatusCode, body)
		}
		if err := json.Unmarshal(body, &st); err != nil {
			t.Fatal(err)
		}
		// Three consecutive reports within ±2 points (a report can cover a
		// short interval right after connecting).
		if st.PacketsLost > 0 && math.Abs(st.LossFraction-want) <= 0.02 && st.RTTMs > 0 {
			good++
		} else {
			good = 0
		}
	}
	t.Logf("stats with %.0f%% injected loss: %+v; relay dropped %d, passed %d RTP packets", want*100, st, relay.dropped.Load(), relay.passed.Load())

	// The bitrate policy reacts: loss > 5 % lowers the target by 15 %.
	deadline = time.Now().Add(20 * time.Second)
	for {
		down, _ := scrapeValue(t, in.Base, `media_bitrate_changes_total{device_id="demo",direction="down"}`)
		target, _ := scrapeValue(t, in.Base, `media_capture_bitrate_target_bps{device_id="demo"}`)
		n, _ := strconv.ParseFloat(down, 64)
		bps, _ := strconv.ParseFloat(target, 64)
		if n >= 1 && bps > 0 && bps < 2_000_000 {
			t.Logf("bitrate policy lowered the target %v times, now %v bps", n, bps)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bitrate target not lowered: changes down %q, target %q", down, target)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if !strings.Contains(in.Log(), "capture bitrate changed") {
		t.Error("no 'capture bitrate changed' log line")
	}
	if err := client.Delete(ctx, http.DefaultClient, ans.Location, ""); err != nil && !errors.Is(err, context.Canceled) {
		t.Logf("delete: %v", err)
	}
}

// freeUDPPort returns a UDP port on 127.0.0.1 that was free a moment ago.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}
