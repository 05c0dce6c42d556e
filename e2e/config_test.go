//go:build e2e

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigFlag runs `mediasvc config print` with the config file given as
// the issue and README document it, "-config file.yaml", and with the env
// override, and checks the effective values.
func TestConfigFlag(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mediasvc.yaml")
	if err := os.WriteFile(path, []byte("http:\n  addr: 127.0.0.1:18081\nauth:\n  api_keys:\n    ops: s3cret-key-value\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"config", "print", "-config", path},
		{"config", "print", "--config", path},
	} {
		out, err := exec.Command(binPath, args...).CombinedOutput()
		if err != nil {
			t.Errorf("mediasvc %s: %v\n%s", strings.Join(args, " "), err, out)
			continue
		}
		if !strings.Contains(string(out), "127.0.0.1:18081") {
			t.Errorf("mediasvc %s: http.addr from the file not shown:\n%s", strings.Join(args, " "), out)
		}
		if strings.Contains(string(out), "s3cret-key-value") {
			t.Errorf("mediasvc %s: API key printed unmasked", strings.Join(args, " "))
		}
	}
	cmd := exec.Command(binPath, "config", "print")
	cmd.Env = append(os.Environ(), "MEDIASVC_HTTP_ADDR=127.0.0.1:18082")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "127.0.0.1:18082") {
		t.Errorf("MEDIASVC_HTTP_ADDR not applied (%v):\n%s", err, out)
	}
}
