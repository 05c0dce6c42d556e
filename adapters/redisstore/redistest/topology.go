package redistest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// CLIBinary is the redis-cli that creates clusters.
var CLIBinary = "/usr/bin/redis-cli"

// SentinelBinary is Debian's redis-sentinel.
var SentinelBinary = "/usr/bin/redis-sentinel"

// Cluster is a running Redis Cluster of primaries without replicas.
type Cluster struct {
	Nodes []*Server
}

// Addrs returns the nodes' addresses.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr
	}
	return out
}

// URL returns a redis:// URL naming every node (go-redis ParseClusterURL:
// the first in the host, the others as addr parameters).
func (c *Cluster) URL() string {
	u := "redis://" + c.Nodes[0].Addr
	for i, n := range c.Nodes[1:] {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		u += sep + "addr=" + n.Addr
	}
	return u
}

// StartCluster starts n redis-servers with cluster mode on (each with its
// cluster bus on a port of its own), joins them with `redis-cli --cluster
// create` (no replicas, the slots split evenly), waits until every node
// says cluster_state:ok and stops them when t ends.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{}
	for range n {
		bus := freePort(t)
		c.Nodes = append(c.Nodes, StartWith(t, "--cluster-enabled", "yes",
			"--cluster-port", strconv.Itoa(bus), "--cluster-config-file", "nodes-"+strconv.Itoa(bus)+".conf",
			"--cluster-node-timeout", "2000"))
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, CLIBinary, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, node := range c.Nodes {
		waitFor(t, 20*time.Second, "cluster_state:ok on "+node.Addr, func() bool {
			return strings.Contains(cli(node.Addr, "cluster", "info"), "cluster_state:ok")
		})
	}
	return c
}

// Sentinel is a primary with replicas watched by Sentinels under the
// master name "mymaster".
type Sentinel struct {
	Primary   *Server
	Replicas  []*Server
	Sentinels []*Server
	Master    string
}

// URL returns a redis:// URL for go-redis ParseFailoverURL: the first
// Sentinel in the host, the others as addr parameters, the master name.
func (s *Sentinel) URL() string {
	u := "redis://" + s.Sentinels[0].Addr + "/0?master_name=" + s.Master
	for _, x := range s.Sentinels[1:] {
		u += "&addr=" + x.Addr
	}
	return u
}

// StartSentinel starts a primary, replicas of it and n redis-sentinels
// (quorum n/2+1) that declare the primary down after downAfter and fail
// over to a replica; it waits until every Sentinel knows every replica.
func StartSentinel(t testing.TB, n, replicas int, downAfter time.Duration) *Sentinel {
	t.Helper()
	s := &Sentinel{Master: "mymaster"}
	s.Primary = Start(t)
	for range replicas {
		r := StartWith(t, "--replicaof", "127.0.0.1", strconv.Itoa(s.Primary.Port))
		waitFor(t, 10*time.Second, "replica in sync", func() bool {
			return strings.Contains(cli(r.Addr, "info", "replication"), "master_link_status:up")
		})
		s.Replicas = append(s.Replicas, r)
	}
	for range n {
		port := freePort(t)
		dir := t.TempDir()
		conf := fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d %d\n"+
			"sentinel down-after-milliseconds %[1]s %[4]d\n"+
			"sentinel failover-timeout %[1]s 10000\n"+
			"sentinel parallel-syncs %[1]s 1\n", s.Master, s.Primary.Port, n/2+1, downAfter.Milliseconds())
		if err := os.WriteFile(filepath.Join(dir, "sentinel.conf"), []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		x := &Server{t: t, Port: port, bin: SentinelBinary, dir: dir}
		x.Addr = "127.0.0.1:" + strconv.Itoa(port)
		x.start()
		t.Cleanup(x.Kill)
		s.Sentinels = append(s.Sentinels, x)
	}
	for _, x := range s.Sentinels {
		for _, r := range s.Replicas {
			waitFor(t, 20*time.Second, "sentinel "+x.Addr+" sees replica "+r.Addr, func() bool {
				return strings.Contains(cli(x.Addr, "sentinel", "replicas", s.Master), strconv.Itoa(r.Port))
			})
		}
		if len(s.Sentinels) > 1 {
			waitFor(t, 20*time.Second, "sentinel "+x.Addr+" sees the other sentinels", func() bool {
				// One "ip" field per other Sentinel known.
				return slices.Index(strings.Fields(cli(x.Addr, "sentinel", "sentinels", s.Master)), "ip") >= 0 &&
					strings.Count("\n"+cli(x.Addr, "sentinel", "sentinels", s.Master), "\nip\n") >= len(s.Sentinels)-1
			})
		}
	}
	return s
}

// PrimaryAddr asks the first live Sentinel for the current primary.
func (s *Sentinel) PrimaryAddr() string {
	for _, x := range s.Sentinels {
		out := strings.Fields(cli(x.Addr, "sentinel", "get-master-addr-by-name", s.Master))
		if len(out) == 2 {
			return out[0] + ":" + out[1]
		}
	}
	return ""
}

// cli runs redis-cli against addr and returns its output ("" on error).
func cli(addr string, args ...string) string {
	host, port, _ := strings.Cut(addr, ":")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, CLIBinary, append([]string{"-h", host, "-p", port}, args...)...).Output()
	if err != nil {
		return ""
	}
	return string(out)
}

func waitFor(t testing.TB, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("redistest: no %s within %s", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
