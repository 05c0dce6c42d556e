//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"mediasvc/adapters/redisstore/redistest"
	"mediasvc/e2e/client"
)

// redisEnv is the Redis a test runs the service on: a single server, a
// Redis Cluster or a Sentinel setup, all started by the test.
type redisEnv struct {
	mode, url string
	srv       *redistest.Server   // mode single
	sentinel  *redistest.Sentinel // mode sentinel
	rdb       redis.UniversalClient
}

func singleRedis(t *testing.T) *redisEnv {
	t.Helper()
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	return &redisEnv{mode: "single", url: srv.URL(0), srv: srv, rdb: rdb}
}

// clusterRedis starts a 3-primary Redis Cluster.
func clusterRedis(t *testing.T) *redisEnv {
	t.Helper()
	c := redistest.StartCluster(t, 3)
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	t.Cleanup(func() { _ = rdb.Close() })
	return &redisEnv{mode: "cluster", url: c.URL(), rdb: rdb}
}

// flush empties every primary.
func (e *redisEnv) flush(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	var err error
	if cc, ok := e.rdb.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return c.FlushAll(ctx).Err() })
	} else {
		err = e.rdb.FlushAll(ctx).Err()
	}
	if err != nil {
		t.Fatalf("flush redis: %v", err)
	}
}

// redisConfig is defaultConfig on the shared Redis of env, checking it
// often so outage tests run quickly.
// e2eBusSecret is the redis.bus_secret every instance of a Redis test
// shares.
const e2eBusSecret = "e2e-bus-secret-shared-by-the-instances"

func redisConfig(env *redisEnv, id string) Config {
	cfg := defaultConfig()
	cfg.set("store", "backend", "redis")
	cfg.set("redis", "mode", env.mode)
	cfg.set("redis", "url", env.url)
	cfg.set("redis", "bus_secret", e2eBusSecret)
	cfg.set("redis", "health_interval", "200ms")
	cfg.set("redis", "max_backoff", "1s")
	cfg.set("instance", "id", id)
	cfg.set("instance", "heartbeat_ttl", "3s")
	return cfg
}

// waitStatus polls url until it answers want, or fails t after d.
func waitStatus(t *testing.T, url string, want int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		code, body := httpStatus(ctx, url)
		cancel()
		if code == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s = %d %s, want %d within %s", url, code, body, want, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func createStatus(t *testing.T, base string) (int, string, []byte) {
	t.Helper()
	resp, body := do(t, "POST", base+"/api/v1/sessions", "application/json", []byte(`{"device_id":"demo"}`), nil)
	var si client.SessionInfo
	_ = json.Unmarshal(body, &si)
	return resp.StatusCode, si.SessionID, body
}

// TestRedisOutageMidStream: Redis dies under a playing viewer. The stream
// keeps playing, readiness turns 503 and creation answers 503; Redis comes
// back empty, the instance re-registers and puts its session back, and
// creation works again.
func TestRedisOutageMidStream(t *testing.T) {
	env := singleRedis(t)
	srv := env.srv
	cfgA, cfgB := redisConfig(env, "a"), redisConfig(env, "b")
	for _, c := range []Config{cfgA, cfgB} {
		c.set("demo", "owner", "a")
		c.set("instance", "lease_ttl", "3s")
	}
	in := startInstance(t, cfgA)
	other := startInstance(t, cfgB)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	v, err := client.Dial(ctx, client.Config{BaseURL: in.Base, Mode: client.ModeWS})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = v.Close() })
	if err := v.WaitFrames(ctx, 30, false); err != nil {
		t.Fatal(err)
	}
	sid := v.Session().SessionID
	goroutinesBefore := goroutines(t, in.Base)

	srv.Kill()
	waitStatus(t, in.Base+"/readyz", http.StatusServiceUnavailable, 5*time.Second)
	if code, _, body := createStatus(t, in.Base); code != http.StatusServiceUnavailable || errorCode(body) != "unavailable" {
		t.Fatalf("create with Redis down = %d %s, want 503 unavailable", code, body)
	}
	before := v.Stats().Frames
	time.Sleep(3 * time.Second)
	if after := v.Stats().Frames; after < before+45 {
		t.Fatalf("stream stalled while Redis was down: %d → %d frames in 3s", before, after)
	}

	srv.Restart() // empty: no persistence
	waitStatus(t, in.Base+"/readyz", http.StatusOK, 10*time.Second)
	if code, _, body := createStatus(t, in.Base); code != http.StatusCreated {
		t.Fatalf("create after Redis came back = %d %s", code, body)
	}
	// The playing session was written back into the empty Redis.
	if code, body := httpStatus(ctx, in.Base+"/api/v1/sessions/"+sid); code != http.StatusOK {
		t.Fatalf("GET the playing session after the restart = %d %s", code, body)
	}
	// And the instance registered itself again.
	if code, body := httpStatus(ctx, in.Base+"/api/v1/instances"); code != http.StatusOK || !strings.Contains(body, `"id":"a"`) {
		t.Fatalf("instances after the restart = %d %s", code, body)
	}
	before = v.Stats().Frames
	time.Sleep(time.Second)
	if after := v.Stats().Frames; after <= before {
		t.Fatalf("stream stalled after Redis came back")
	}
	// The outage's retries left nothing running behind them: same viewer,
	// same goroutines give or take the few a reconnecting client pool and
	// the runtime's own timers come and go with.
	if after := goroutines(t, in.Base); after > goroutinesBefore+2 {
		t.Errorf("goroutines %d before the outage, %d after it", goroutinesBefore, after)
	} else {
		t.Logf("goroutines %d before the outage, %d after it", goroutinesBefore, after)
	}
	// a took the demo device's lease again, and forwarding works again:
	// a session asked of b is created on a and plays through b.
	if h := leaseHolder(t, env.rdb, "demo"); h != "a" {
		t.Fatalf("demo lease after the restart held by %q, want a", h)
	}
	waitStatus(t, other.Base+"/readyz", http.StatusOK, 10*time.Second)
	v2, err := client.Dial(ctx, client.Config{BaseURL: other.Base, Mode: client.ModeWS})
	if err != nil {
		t.Fatalf("dial through b after the restart: %v", err)
	}
	t.Cleanup(func() { _ = v2.Close() })
	if err := v2.WaitFrames(ctx, 30, false); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(in.Log(), `msg="session created" session_id=`+v2.Session().SessionID) {
		t.Fatal("the session asked of b was not created on a")
	}
}

// TestInstancesShareSessions: two instances on one Redis see each other,
// each other's sessions, and one quota.
func TestInstancesShareSessions(t *testing.T) { testInstancesShareSessions(t, singleRedis(t)) }

func testInstancesShareSessions(t *testing.T, env *redisEnv) {
	cfgA, cfgB := redisConfig(env, "a"), redisConfig(env, "b")
	for _, c := range []Config{cfgA, cfgB} {
		c.set("limits", "sessions_per_device", 2)
	}
	a, b := startInstance(t, cfgA), startInstance(t, cfgB)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	code, body := httpStatus(ctx, a.Base+"/api/v1/instances")
	var list struct {
		Instances []struct{ ID string } `json:"instances"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &list) != nil || len(list.Instances) != 2 {
		t.Fatalf("instances on a = %d %s, want a and b", code, body)
	}

	code, sid, body2 := createStatus(t, a.Base)
	if code != http.StatusCreated {
		t.Fatalf("create on a = %d %s", code, body2)
	}
	if code, body := httpStatus(ctx, b.Base+"/api/v1/sessions/"+sid); code != 200 || !strings.Contains(body, sid) {
		t.Fatalf("GET a's session on b = %d %s", code, body)
	}
	if code, _, body := createStatus(t, b.Base); code != http.StatusCreated {
		t.Fatalf("create on b = %d %s", code, body)
	}
	// Two sessions of demo exist across the instances: the third is over
	// the per-device quota wherever it is asked for.
	if code, _, body := createStatus(t, a.Base); code != http.StatusTooManyRequests || errorCode(body) != "limit_exceeded" {
		t.Fatalf("third create = %d %s, want 429 limit_exceeded", code, body)
	}
	// Deleting on b frees the slot for a.
	if resp, body := do(t, "DELETE", b.Base+"/api/v1/sessions/"+sid, "", nil, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE a's session on b = %d %s", resp.StatusCode, body)
	}
	if code, _, body := createStatus(t, a.Base); code != http.StatusCreated {
		t.Fatalf("create after the delete = %d %s", code, body)
	}

	// b stops: it leaves the list (deregistered on a graceful stop).
	_ = b.Stop()
	code, body = httpStatus(ctx, a.Base+"/api/v1/instances")
	if code != 200 || strings.Contains(body, `"id":"b"`) {
		t.Fatalf("instances after b stopped = %d %s", code, body)
	}
}

// TestDistributedRateLimit: a burst of creations split across three
// instances is limited as one.
func TestDistributedRateLimit(t *testing.T) { testDistributedRateLimit(t, singleRedis(t)) }

func testDistributedRateLimit(t *testing.T, env *redisEnv) {
	var ins []*Instance
	for _, id := range []string{"a", "b", "c"} {
		cfg := redisConfig(env, id)
		cfg.set("limits", "create_rate", 0.01)
		cfg.set("limits", "create_burst", 6)
		ins = append(ins, startInstance(t, cfg))
	}
	created, limited := 0, 0
	for i := range 18 {
		code, _, body := createStatus(t, ins[i%3].Base)
		switch code {
		case http.StatusCreated:
			created++
		case http.StatusTooManyRequests:
			if errorCode(body) != "rate_limited" {
				t.Fatalf("429 with %s", body)
			}
			limited++
		default:
			t.Fatalf("create = %d %s", code, body)
		}
	}
	if created != 6 || limited != 12 {
		t.Fatalf("18 creations over 3 instances: %d created, %d limited; want 6 and 12", created, limited)
	}
}

// TestMigrateCommand: `mediasvc migrate` on an empty and on a v1 keyspace,
// and the service refusing a newer schema.
func TestMigrateCommand(t *testing.T) {
	env := singleRedis(t)
	srv, rdb := env.srv, env.rdb
	ctx := context.Background()
	migrate := func(args ...string) (string, error) {
		cmd := exec.Command(binPath, append([]string{"migrate"}, args...)...)
		cmd.Env = []string{"MEDIASVC_REDIS_URL=" + srv.URL(0)}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := migrate("status")
	if err != nil || !strings.Contains(out, "schema 0") || !strings.Contains(out, "pending 0001_initial") {
		t.Fatalf("migrate status on empty = %v\n%s", err, out)
	}
	// A v1 keyspace: one session whose instance is in the old field.
	rdb.Set(ctx, "mediasvc:schema", 1, 0)
	rdb.HSet(ctx, "mediasvc:session:s1", "id", "s1", "device", "demo", "role", "viewer", "owner", "o",
		"state", "new", "created", "1", "updated", "1", "expires", fmt.Sprint(time.Now().Add(time.Hour).UnixMicro()),
		"ttl", "60000000", "node", "old-node")
	rdb.ZAdd(ctx, "mediasvc:expiry", redis.Z{Score: float64(time.Now().Add(time.Hour).UnixMicro()), Member: "s1"})
	rdb.HSet(ctx, "mediasvc:index", "s1", "demo\x00o")

	// The service refuses to start on it and says what to do.
	cfg := redisConfig(env, "a")
	out2, code := runBinary(t, cfg)
	if code == 0 || !strings.Contains(out2, "migrate up") {
		t.Fatalf("start on schema 1 = exit %d\n%s", code, out2)
	}
	if out, err = migrate("up"); err != nil || !strings.Contains(out, "applied 0002_session_instance_field") ||
		!strings.Contains(out, "applied 0005_hash_tags_devices") {
		t.Fatalf("migrate up = %v\n%s", err, out)
	}
	if n, _ := rdb.Exists(ctx, "mediasvc:session:s1", "mediasvc:expiry", "mediasvc:index").Result(); n != 0 {
		t.Fatalf("%d keys of the v1 layout left after migrating", n)
	}
	in := startInstance(t, redisConfig(env, "a"))
	if code, body := httpStatus(ctx, in.Base+"/api/v1/sessions/s1"); code != 200 || !strings.Contains(body, `"s1"`) {
		t.Fatalf("migrated session = %d %s", code, body)
	}
	_ = in.Stop()

	rdb.Set(ctx, "mediasvc:schema", 99, 0)
	out2, code = runBinary(t, redisConfig(env, "a"))
	if code == 0 || !strings.Contains(out2, "newer") {
		t.Fatalf("start on a newer schema = exit %d\n%s", code, out2)
	}
}

// runBinary runs the service with cfg until it exits (within 10 s) and
// returns its output and exit code.
func runBinary(t *testing.T, cfg Config) (string, int) {
	t.Helper()
	cfg.set("http", "addr", fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	b, _ := json.Marshal(cfg)
	path := t.TempDir() + "/mediasvc.yaml"
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binPath, "-config", path).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("service kept running: %s", out)
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	return string(out), code
}

// TestKilledInstanceExpires: an instance SIGKILLed leaves the instance
// list within its heartbeat TTL, and its sessions expire and are reaped by
// the survivors.
func TestKilledInstanceExpires(t *testing.T) { testKilledInstanceExpires(t, singleRedis(t)) }

func testKilledInstanceExpires(t *testing.T, env *redisEnv) {
	cfgA, cfgB := redisConfig(env, "a"), redisConfig(env, "b")
	for _, c := range []Config{cfgA, cfgB} {
		c.set("session", "ttl", "2s")
		c.set("redis", "touch_throttle", "0s")
	}
	a, b := startInstance(t, cfgA), startInstance(t, cfgB)
	code, sid, body := createStatus(t, b.Base)
	if code != http.StatusCreated {
		t.Fatalf("create on b = %d %s", code, body)
	}
	killed := time.Now()
	if err := b.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-b.Done()
	deadline := killed.Add(3*time.Second + 2*time.Second) // heartbeat TTL + slack
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		code, body := httpStatus(ctx, a.Base+"/api/v1/instances")
		cancel()
		if code == 200 && !strings.Contains(body, `"id":"b"`) {
			t.Logf("b left the instance list %s after SIGKILL", time.Since(killed).Round(100*time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b still listed %s after SIGKILL: %s", time.Since(killed), body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitStatus(t, a.Base+"/api/v1/sessions/"+sid, http.StatusNotFound, 5*time.Second)
}

// TestSignalingForwardedAcrossInstances: three instances on one Redis,
// the demo device owned by b. A session created on a is held by b (its
// peer and the capture live there) and signaled through a WebSocket on c —
// a hands out c's ws_url through http.public_url, as a load balancer
// without affinity would. Offer, candidates and events cross Redis; media
// flows from b. WHEP on a for b's device works too. It also times session
// setup same-instance against forwarded.
func TestSignalingForwardedAcrossInstances(t *testing.T) {
	testSignalingForwardedAcrossInstances(t, singleRedis(t))
}

func testSignalingForwardedAcrossInstances(t *testing.T, env *redisEnv) {
	cfg := func(id string) Config {
		c := redisConfig(env, id)
		c.set("demo", "owner", "b")
		return c
	}
	b := startInstance(t, cfg("b"))
	c := startInstance(t, cfg("c"))
	cfgA := cfg("a")
	cfgA.set("http", "public_url", c.Base)
	a := startInstance(t, cfgA)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	rdb := env.rdb
	if h := leaseHolder(t, rdb, "demo"); h != "b" {
		t.Fatalf("demo lease held by %q, want b", h)
	}

	v, err := client.Dial(ctx, client.Config{BaseURL: a.Base, Mode: client.ModeWS})
	if err != nil {
		t.Fatalf("dial: POST on a, WebSocket on c: %v", err)
	}
	t.Cleanup(func() { _ = v.Close() })
	if !strings.HasPrefix(v.Session().WSURL, "ws://"+c.Addr) {
		t.Fatalf("ws_url %s is not on c", v.Session().WSURL)
	}
	if err := v.WaitFrames(ctx, 60, true); err != nil {
		t.Fatal(err)
	}
	sid := v.Session().SessionID
	created := `msg="session created" session_id=` + sid
	if !strings.Contains(b.Log(), created) || strings.Contains(a.Log(), created) || strings.Contains(c.Log(), created) {
		t.Fatal("the session was not created on b alone")
	}
	// Stats asked on c come from b.
	if code, body := httpStatus(ctx, c.Base+"/api/v1/sessions/"+sid+"/stats"); code != 200 || !strings.Contains(body, "packets_sent") {
		t.Fatalf("stats through c = %d %s", code, body)
	}

	// WHEP on a for b's device.
	w, err := client.Dial(ctx, client.Config{BaseURL: a.Base, Mode: client.ModeWHEP})
	if err != nil {
		t.Fatalf("WHEP on a: %v", err)
	}
	if err := w.WaitFrames(ctx, 30, false); err != nil {
		t.Fatalf("WHEP on a: %v", err)
	}
	_ = w.Close()

	// DELETE on a: b closes the peer and the bye reaches the socket on c.
	if resp, body := do(t, "DELETE", a.Base+"/api/v1/sessions/"+sid, "", nil, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE on a = %d %s", resp.StatusCode, body)
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if _, err := v.WaitMessage(wctx, func(m client.Message) bool { return m.Type == "bye" }); err != nil {
		t.Fatalf("no bye relayed to the socket on c: %v", err)
	}

	if env.mode != "single" {
		return // the timing below is taken once, on a single Redis
	}
	// Setup time: same instance (everything on b) against forwarded
	// (POST on a, WebSocket on c, peer on b).
	measure := func(base string) (offerAnswer, connected []time.Duration) {
		for range 10 {
			v, err := client.Dial(ctx, client.Config{BaseURL: base, Mode: client.ModeWS})
			if err != nil {
				t.Fatalf("dial %s: %v", base, err)
			}
			if err := v.WaitFrames(ctx, 1, false); err != nil {
				t.Fatal(err)
			}
			st := v.Stats()
			offerAnswer = append(offerAnswer, st.AnswerReceived.Sub(st.OfferSent))
			connected = append(connected, st.Connected.Sub(st.Start))
			_ = v.Close()
		}
		for _, d := range [][]time.Duration{offerAnswer, connected} {
			slices.Sort(d)
		}
		return
	}
	oaSame, cSame := measure(b.Base)
	oaFwd, cFwd := measure(a.Base)
	t.Logf("session setup, 10 each: offer→answer same-instance p50 %s p95 %s, forwarded p50 %s p95 %s",
		pct(oaSame, 50), pct(oaSame, 95), pct(oaFwd, 50), pct(oaFwd, 95))
	t.Logf("session setup, 10 each: POST→connected same-instance p50 %s p95 %s, forwarded p50 %s p95 %s",
		pct(cSame, 50), pct(cSame, 95), pct(cFwd, 50), pct(cFwd, 95))
}

// TestOwnerKilledLeaseMoves: with no configured owner the demo device's
// lease goes to one instance; SIGKILL it, and the other takes the lease
// within its TTL, its viewers are gone, and a new session plays.
func TestOwnerKilledLeaseMoves(t *testing.T) { testOwnerKilledLeaseMoves(t, singleRedis(t)) }

func testOwnerKilledLeaseMoves(t *testing.T, env *redisEnv) {
	ins := map[string]*Instance{}
	for _, id := range []string{"a", "b"} {
		c := redisConfig(env, id)
		c.set("instance", "lease_ttl", "2s")
		ins[id] = startInstance(t, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rdb := env.rdb
	holder := leaseHolder(t, rdb, "demo")
	owner, other := ins[holder], ins["a"]
	if holder == "a" {
		other = ins["b"]
	}
	if owner == nil {
		t.Fatalf("demo lease held by %q", holder)
	}
	v, err := client.Dial(ctx, client.Config{BaseURL: other.Base, Mode: client.ModeWS})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Close() })
	if err := v.WaitFrames(ctx, 15, false); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	_ = owner.Signal(syscall.SIGKILL)
	<-owner.Done()
	for {
		h, _ := rdb.HGet(ctx, leaseKey("demo"), "holder").Result()
		if h != "" && h != holder {
			t.Logf("lease moved from %s to %s %s after SIGKILL", holder, h, time.Since(killed).Round(100*time.Millisecond))
			break
		}
		if time.Since(killed) > 2*time.Second+2*time.Second {
			t.Fatalf("lease still %q %s after SIGKILL", h, time.Since(killed))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The old viewer, whose socket is on the survivor, is told.
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if _, err := v.WaitMessage(wctx, func(m client.Message) bool { return m.Type == "bye" && m.Reason == "owner_gone" }); err != nil {
		t.Fatalf("viewer of the killed owner got no bye owner_gone: %v (got %v)", err, msgTypes(v.Messages()))
	}
	// A new session plays, on the new owner.
	v2, err := client.Dial(ctx, client.Config{BaseURL: other.Base, Mode: client.ModeWS})
	if err != nil {
		t.Fatalf("new session after the owner died: %v", err)
	}
	t.Cleanup(func() { _ = v2.Close() })
	if err := v2.WaitFrames(ctx, 15, false); err != nil {
		t.Fatal(err)
	}
}

// leaseHolder waits up to 5 s for device's lease to be held and returns
// the holder.
func leaseHolder(t *testing.T, rdb redis.UniversalClient, device string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		h, _ := rdb.HGet(context.Background(), leaseKey(device), "holder").Result()
		if h != "" || time.Now().After(deadline) {
			return h
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// leaseKey is the key of a device's lease under the default prefix.
func leaseKey(device string) string { return "mediasvc:{dev:" + device + "}lease" }

// TestMultiInstanceCluster runs the multi-instance tests on a 3-primary
// Redis Cluster the test starts: shared sessions and quota, distributed
// rate limits, a killed instance expiring, signaling forwarded over the
// bus (sharded pub/sub) and a device lease moving.
func TestMultiInstanceCluster(t *testing.T) {
	env := clusterRedis(t)
	for _, c := range []struct {
		name string
		run  func(*testing.T, *redisEnv)
	}{
		{"InstancesShareSessions", testInstancesShareSessions},
		{"DistributedRateLimit", testDistributedRateLimit},
		{"KilledInstanceExpires", testKilledInstanceExpires},
		{"SignalingForwardedAcrossInstances", testSignalingForwardedAcrossInstances},
		{"OwnerKilledLeaseMoves", testOwnerKilledLeaseMoves},
	} {
		t.Run(c.name, func(t *testing.T) {
			env.flush(t)
			c.run(t, env)
		})
	}
}

// goroutines reads the service's goroutine count from its /metrics.
func goroutines(t *testing.T, base string) int {
	t.Helper()
	v, ok := scrapeValue(t, base, "media_goroutine_count")
	if !ok {
		t.Fatal("no media_goroutine_count at /metrics")
	}
	n, err := strconv.ParseFloat(v, 64)
	if err != nil {
		t.Fatalf("media_goroutine_count %q: %v", v, err)
	}
	return int(n)
}

// TestSentinelFailoverMidStream: two instances on a Sentinel setup (a
// primary, two replicas, three Sentinels) with redis.wait_replicas 1.
// The primary is SIGKILLed under a playing viewer: both instances stay
// up, the stream keeps playing, new sessions are created again once the
// Sentinels promoted a replica, and every session acknowledged before the
// kill is still there.
func TestSentinelFailoverMidStream(t *testing.T) {
	const downAfter = time.Second
	s := redistest.StartSentinel(t, 3, 2, downAfter)
	env := &redisEnv{mode: "sentinel", url: s.URL(), sentinel: s}
	cfg := func(id string) Config {
		c := redisConfig(env, id)
		c.set("demo", "owner", "a")
		c.set("redis", "wait_replicas", 1)
		return c
	}
	a, b := startInstance(t, cfg("a")), startInstance(t, cfg("b"))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	v, err := client.Dial(ctx, client.Config{BaseURL: a.Base, Mode: client.ModeWS})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = v.Close() })
	if err := v.WaitFrames(ctx, 30, false); err != nil {
		t.Fatal(err)
	}
	acked := []string{v.Session().SessionID}
	for i := range 10 {
		code, sid, body := createStatus(t, []*Instance{a, b}[i%2].Base)
		if code != http.StatusCreated {
			t.Fatalf("create before the failover = %d %s", code, body)
		}
		acked = append(acked, sid)
	}

	killed := time.Now()
	framesAtKill := v.Stats().Frames
	s.Primary.Kill()
	// Creations fail (503) until a replica is promoted, then work again.
	var recovered time.Duration
	for {
		code, sid, body := createStatus(t, b.Base)
		if code == http.StatusCreated {
			recovered = time.Since(killed)
			acked = append(acked, sid)
			break
		}
		if code != http.StatusServiceUnavailable {
			t.Fatalf("create during the failover = %d %s, want 503 or 201", code, body)
		}
		if time.Since(killed) > 30*time.Second {
			t.Fatalf("no session created within 30s of killing the primary: %d %s", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("primary killed: new sessions again after %s (Sentinel down-after %s); now on %s",
		recovered.Round(100*time.Millisecond), downAfter, s.PrimaryAddr())
	for _, in := range []*Instance{a, b} {
		select {
		case <-in.Done():
			t.Fatalf("instance exited during the failover:\n%s", in.Log())
		default:
		}
		waitStatus(t, in.Base+"/readyz", http.StatusOK, 10*time.Second)
	}
	// The stream played on through the failover: at 30 fps, at least half
	// the frames of the time since the kill arrived.
	if got, want := v.Stats().Frames-framesAtKill, int(time.Since(killed).Seconds()*15); got < want {
		t.Fatalf("stream stalled during the failover: %d frames in %s", got, time.Since(killed).Round(100*time.Millisecond))
	}
	// Nothing acknowledged was lost, seen from either instance.
	for i, sid := range acked {
		base := []*Instance{a, b}[i%2].Base
		if code, body := httpStatus(ctx, base+"/api/v1/sessions/"+sid); code != http.StatusOK {
			t.Fatalf("session %s acknowledged before the failover: GET = %d %s", sid, code, body)
		}
	}
	// And a new viewer plays, through b (forwarded to a, the owner).
	v2, err := client.Dial(ctx, client.Config{BaseURL: b.Base, Mode: client.ModeWS})
	if err != nil {
		t.Fatalf("dial after the failover: %v", err)
	}
	t.Cleanup(func() { _ = v2.Close() })
	if err := v2.WaitFrames(ctx, 15, false); err != nil {
		t.Fatal(err)
	}
}
