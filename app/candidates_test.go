package app_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"mediasvc/app"
	"mediasvc/domain"
	"mediasvc/ports"
	"mediasvc/ports/portstest"
)

// offerRecorder wraps the rig's transport so each peer records the offers
// it is asked to answer and the candidates it is handed.
type offerRecorder struct {
	mu     sync.Mutex
	offers []string
	cands  []string
}

func (o *offerRecorder) wrap(d *app.Deps) {
	tr := *d.Transport.(*portstest.Transport)
	inner := tr.NewPeerFunc
	tr.NewPeerFunc = func(ctx context.Context, f ports.Fanout, opts ports.PeerOptions) (ports.Peer, error) {
		p, err := inner(ctx, f, opts)
		if err != nil {
			return nil, err
		}
		fp := p.(*portstest.Peer)
		fp.AnswerFunc = func(_ context.Context, offer string) (string, error) {
			o.mu.Lock()
			o.offers = append(o.offers, offer)
			o.mu.Unlock()
			return "answer", nil
		}
		add := fp.AddCandidateFunc
		fp.AddCandidateFunc = func(c domain.Candidate) error {
			o.mu.Lock()
			o.cands = append(o.cands, c.Candidate)
			o.mu.Unlock()
			return add(c)
		}
		return fp, nil
	}
	d.Transport = &tr
}

func (o *offerRecorder) seen() ([]string, []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.offers...), append([]string(nil), o.cands...)
}

func hostCandidate(addr string) string {
	return "candidate:1 1 udp 2130706431 " + addr + " 5000 typ host"
}

// TestCandidatesRefused: remote candidates that point at link-local,
// multicast, unspecified, hostname or (outside loopback mode) loopback
// addresses are refused with ErrInvalidCandidate before they reach the
// peer and counted by reason; mDNS ones reach the peer, no error, counted
// as mdns; every reason is exported at 0 from the start.
func TestCandidatesRefused(t *testing.T) {
	for _, loopback := range []bool{false, true} {
		rd, mp := newReading(t)
		rec := &offerRecorder{}
		r := newRigOn(t, app.Config{Candidates: domain.CandidatePolicy{AllowLoopback: loopback}}, newMemstore(), nil,
			func(d *app.Deps) { d.Meter = mp.Meter("test") }, rec.wrap)
		kv := attribute.String
		for _, reason := range append([]string{"limit", "invalid", "mdns"}, domain.CandidateRefusals...) {
			if !rd.has("media_ice_candidates_rejected", kv("reason", reason)) {
				t.Errorf("media_ice_candidates_rejected{reason=%q} not exported at start", reason)
			}
		}
		ctx := context.Background()
		sess, _, err := r.svc.CreateSession(ctx, "dev", domain.RoleViewer, "o")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.svc.Offer(ctx, sess.ID, "v=0\r\n"); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			addr, reason string
			refused      bool
		}{
			{"169.254.169.254", domain.CandidateLinkLocal, true},
			{"fe80::1", domain.CandidateLinkLocal, true},
			{"224.0.0.251", domain.CandidateMulticast, true},
			{"0.0.0.0", domain.CandidateUnspecified, true},
			{"::", domain.CandidateUnspecified, true},
			{"metadata.internal", domain.CandidateHostname, true},
			{"127.0.0.1", domain.CandidateLoopback, !loopback},
			{"2b1f4e8a-1c1d-4c43-9a0c-2d1f3e4a5b6c.local", "mdns", false},
			{"192.0.2.1", "", false},
		} {
			before := rd.value("media_ice_candidates_rejected", kv("reason", tc.reason))
			_, cands := rec.seen()
			err := r.svc.AddCandidate(ctx, sess.ID, domain.Candidate{Candidate: hostCandidate(tc.addr)})
			_, after := rec.seen()
			var re *domain.CandidateRefusedError
			switch {
			case tc.refused:
				if !errors.Is(err, domain.ErrInvalidCandidate) || !errors.As(err, &re) || re.Reason != tc.reason {
					t.Errorf("loopback=%v %s: %v, want refused for %s", loopback, tc.addr, err, tc.reason)
				}
				if len(after) != len(cands) {
					t.Errorf("loopback=%v %s: the refused candidate reached the peer", loopback, tc.addr)
				}
			default:
				if err != nil {
					t.Errorf("loopback=%v %s: %v, want accepted", loopback, tc.addr, err)
				}
				if len(after) != len(cands)+1 {
					t.Errorf("loopback=%v %s: the candidate did not reach the peer", loopback, tc.addr)
				}
			}
			if tc.reason != "" && (tc.refused || tc.reason == "mdns") {
				if got := rd.value("media_ice_candidates_rejected", kv("reason", tc.reason)); got != before+1 {
					t.Errorf("loopback=%v %s: rejected{reason=%s} %v → %v, want +1", loopback, tc.addr, tc.reason, before, got)
				}
			}
		}
	}
}

// TestOfferCandidatesFiltered: an offer's refused candidates are taken
// out before the peer sees it and counted; an offer whose every
// candidate is refused is refused itself (ErrInvalidCandidate), and one
// without candidates (trickle) passes.
func TestOfferCandidatesFiltered(t *testing.T) {
	rd, mp := newReading(t)
	rec := &offerRecorder{}
	r := newRigOn(t, app.Config{}, newMemstore(), nil, func(d *app.Deps) { d.Meter = mp.Meter("test") }, rec.wrap)
	ctx := context.Background()
	kv := attribute.String
	offer := func(cands ...string) string {
		s := "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
		for _, c := range cands {
			s += "a=" + hostCandidate(c) + "\r\n"
		}
		return s
	}

	bad, _, err := r.svc.CreateSession(ctx, "dev", domain.RoleViewer, "o")
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.svc.Offer(ctx, bad.ID, offer("169.254.1.1", "0.0.0.0"))
	var re *domain.CandidateRefusedError
	if !errors.Is(err, domain.ErrInvalidCandidate) || !errors.As(err, &re) || re.Reason != domain.CandidateLinkLocal {
		t.Fatalf("offer with refused candidates only: %v, want the link-local refusal", err)
	}
	if offers, _ := rec.seen(); len(offers) != 0 {
		t.Fatalf("the refused offer reached a peer: %q", offers)
	}

	good, _, err := r.svc.CreateSession(ctx, "dev", domain.RoleViewer, "o")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.svc.Offer(ctx, good.ID, offer("192.0.2.7", "ff02::1", "127.0.0.1", "x.local")); err != nil {
		t.Fatalf("offer with one usable candidate: %v", err)
	}
	offers, _ := rec.seen()
	if len(offers) != 1 || !strings.Contains(offers[0], "192.0.2.7") || !strings.Contains(offers[0], "x.local") ||
		strings.Contains(offers[0], "ff02::1") || strings.Contains(offers[0], "127.0.0.1") {
		t.Fatalf("the peer got %q, want the multicast and loopback candidates gone", offers)
	}
	for reason, want := range map[string]float64{
		domain.CandidateLinkLocal: 1, domain.CandidateUnspecified: 1, domain.CandidateMulticast: 1, domain.CandidateLoopback: 1, "mdns": 1,
	} {
		if got := rd.value("media_ice_candidates_rejected", kv("reason", reason)); got != want {
			t.Errorf("rejected{reason=%s} = %v, want %v", reason, got, want)
		}
	}

	trickle, _, err := r.svc.CreateSession(ctx, "dev", domain.RoleViewer, "o")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.svc.Offer(ctx, trickle.ID, offer()); err != nil {
		t.Fatalf("offer without candidates: %v", err)
	}
}

// TestICEServersPerSession: a TURN REST server reaches the client and the
// session's own peer with credentials minted for that session, the
// client's valid until the session's expiry; static servers pass as they
// are and the secret reaches neither.
func TestICEServersPerSession(t *testing.T) {
	const secret = "a-turn-rest-secret-of-some-length"
	servers := []domain.ICEServer{
		{URLs: []string{"stun:stun.example:3478"}},
		{URLs: []string{"turn:turn.example:3478"}, Secret: secret},
	}
	r := newRigOn(t, app.Config{SessionTTL: time.Minute}, newMemstore(), nil, func(d *app.Deps) {
		d.Transport.(*portstest.Transport).Servers = servers
	})
	ctx := context.Background()
	sess, _, err := r.svc.CreateSession(ctx, "dev", domain.RoleViewer, "o")
	if err != nil {
		t.Fatal(err)
	}
	got := r.svc.ICEServersFor(sess)
	user, cred := domain.TURNCredentials(secret, sess.ID, sess.ExpiresAt)
	if len(got) != 2 || got[0].Username != "" || got[1].Username != user || got[1].Credential != cred || got[1].Secret != "" {
		t.Fatalf("ICEServersFor = %+v, want the TURN server with %q/%q", got, user, cred)
	}
	if !strings.HasSuffix(user, ":"+string(sess.ID)) {
		t.Fatalf("username %q does not name the session", user)
	}
	other, _, err := r.svc.CreateSession(ctx, "dev", domain.RoleViewer, "o")
	if err != nil {
		t.Fatal(err)
	}
	if o := r.svc.ICEServersFor(other); o[1].Credential == got[1].Credential {
		t.Fatal("two sessions share a TURN credential")
	}
	if _, err := r.svc.Offer(ctx, sess.ID, "v=0\r\n"); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	opts := r.opts[0]
	r.mu.Unlock()
	if len(opts.ICEServers) != 2 || opts.ICEServers[1].Secret != "" || !strings.HasSuffix(opts.ICEServers[1].Username, ":"+string(sess.ID)) ||
		opts.ICEServers[1].Credential == "" {
		t.Fatalf("the peer's own servers %+v, want minted credentials for the session", opts.ICEServers)
	}
}

// has reports whether instrument name has a data point whose attributes
// include every one of want, whatever its value.
func (r *reading) has(name string, want ...attribute.KeyValue) bool {
	r.t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.rd.Collect(context.Background(), &rm); err != nil {
		r.t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			if d, ok := m.Data.(metricdata.Sum[int64]); ok {
				for _, p := range d.DataPoints {
					match := true
					for _, kv := range want {
						if v, ok := p.Attributes.Value(kv.Key); !ok || v != kv.Value {
							match = false
						}
					}
					if match {
						return true
					}
				}
			}
		}
	}
	return false
}
