package redisstore

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"mediasvc/domain"
	"mediasvc/ports"
	"mediasvc/ports/bustest"
)

var busPrefixes atomic.Int64

// busNet gives each test its own prefix on rdb, so tests do not hear each
// other's instances.
func busNet(rdb redis.UniversalClient) bustest.Network {
	return func(t *testing.T) func(string) ports.Bus {
		prefix := fmt.Sprintf("bus%d:", busPrefixes.Add(1))
		return func(id string) ports.Bus { return newBus(t, rdb, prefix, id) }
	}
}

// testSecret is the bus secret the tests' instances share.
var testSecret = []byte("a-test-bus-secret-of-32-bytes-or-more")

// newBus is the bus of instance id on rdb under prefix, signing with
// testSecret.
func newBus(t testing.TB, rdb redis.UniversalClient, prefix, id string) *Bus {
	t.Helper()
	b, err := NewBus(rdb, BusOptions{Prefix: prefix, Self: id, Secrets: [][]byte{testSecret}, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBusContract(t *testing.T) {
	rdb, _ := newClient(t)
	bustest.Run(t, busNet(rdb))
}

func TestBusContractCluster(t *testing.T) {
	bustest.Run(t, busNet(newCluster(t)))
}

// serveBuses runs Serve on each bus until the test ends and waits until
// each listens.
func serveBuses(t *testing.T, buses ...*Bus) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, b := range buses {
		wg.Go(func() {
			_ = b.Serve(ctx, func(context.Context, domain.BusRequest) (domain.BusReply, error) {
				return domain.BusReply{SDP: b.self}, nil
			})
		})
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	for _, b := range buses {
		select {
		case <-b.ready:
		case <-time.After(10 * time.Second):
			t.Fatalf("bus %s never listened", b.self)
		}
	}
}

// pubsubClients counts the connections in pub/sub mode on the server.
func pubsubClients(t *testing.T, rdb *redis.Client) int {
	t.Helper()
	out, err := rdb.Do(context.Background(), "CLIENT", "LIST", "TYPE", "pubsub").Text()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(out, "id=")
}

// An instance relaying many sockets holds one pub/sub connection: each
// socket's topic is a channel on it, not a connection and goroutine.
func TestBusOneConnectionPerInstance(t *testing.T) {
	rdb, _ := newClient(t)
	a, b := newBus(t, rdb, "one:", "a"), newBus(t, rdb, "one:", "b")
	serveBuses(t, a, b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got atomic.Int64
	var topics []string
	for range 50 {
		topic, stop, err := b.Subscribe(ctx, func(domain.SessionEvent) { got.Add(1) })
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
		topics = append(topics, topic)
	}
	if n := pubsubClients(t, rdb); n != 2 {
		t.Fatalf("%d pub/sub connections for 2 instances and 50 topics, want 2", n)
	}
	for _, topic := range topics {
		if err := a.Publish(ctx, topic, domain.SessionEvent{Type: domain.EventBye}); err != nil {
			t.Fatal(err)
		}
	}
	for got.Load() < 50 {
		if ctx.Err() != nil {
			t.Fatalf("%d of 50 events delivered", got.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// After Redis restarts, the connection comes back with its channels:
// calls and an existing topic work again.
func TestBusSurvivesRedisRestart(t *testing.T) {
	rdb, srv := newClient(t)
	a, b := newBus(t, rdb, "rs:", "a"), newBus(t, rdb, "rs:", "b")
	serveBuses(t, a, b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got := make(chan domain.SessionEvent, 16)
	topic, stop, err := b.Subscribe(ctx, func(ev domain.SessionEvent) { got <- ev })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	srv.Restart()
	for {
		// Each attempt on its own deadline: a call published before b's
		// connection resubscribed is lost, and its caller waits only that long.
		actx, acancel := context.WithTimeout(ctx, time.Second)
		_, cerr := a.Call(actx, "b", domain.BusRequest{Method: domain.BusPing})
		perr := a.Publish(actx, topic, domain.SessionEvent{Type: domain.EventState, State: "back"})
		acancel()
		if cerr == nil && perr == nil {
			select {
			case ev := <-got:
				if ev.State == "back" {
					return
				}
			case <-time.After(100 * time.Millisecond):
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("bus never came back after the restart: call %v, publish %v", cerr, perr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
