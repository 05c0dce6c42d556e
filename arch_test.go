// Package mediasvc_test checks the shape of the module: the dependency rule
// of the hexagon (DESIGN.md), so a change that bends it fails a test instead
// of slipping through review.
package mediasvc_test

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

type pkg struct {
	ImportPath  string
	Imports     []string
	TestImports []string // in-package _test.go files: fakes, not other adapters
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func isStd(path string) bool {
	return !strings.Contains(strings.SplitN(path, "/", 2)[0], ".") && !strings.HasPrefix(path, "mediasvc")
}

func TestDependencyRule(t *testing.T) {
	for _, p := range listPackages(t) {
		for _, imp := range append(p.Imports, p.TestImports...) {
			if err := allowed(p.ImportPath, imp); err != "" {
				t.Errorf("%s imports %s: %s", p.ImportPath, imp, err)
			}
		}
		// app records through the OTel APIs only (metric, trace); the SDKs
		// and exporters are wired in cmd (its tests may read spans through
		// the SDK's in-memory exporter).
		if p.ImportPath == "mediasvc/app" {
			for _, imp := range p.Imports {
				if strings.HasPrefix(imp, "go.opentelemetry.io/otel/sdk") || strings.HasPrefix(imp, "go.opentelemetry.io/otel/exporters") {
					t.Errorf("app imports %s: app uses the OpenTelemetry API; the SDK is wired in cmd", imp)
				}
			}
		}
	}
}

// allowed returns why from may not import to, or "".
func allowed(from, to string) string {
	ours := strings.HasPrefix(to, "mediasvc/") || to == "mediasvc"
	switch {
	case from == "mediasvc/domain":
		if !isStd(to) {
			return "domain imports only the standard library"
		}
	case from == "mediasvc/ports":
		if ours && to != "mediasvc/domain" {
			return "ports speaks in domain types only"
		}
	case from == "mediasvc/app" || strings.HasPrefix(from, "mediasvc/app/"):
		if ours && to != "mediasvc/domain" && to != "mediasvc/ports" {
			return "app imports only domain and ports"
		}
		if strings.HasPrefix(to, "github.com/pion/") {
			return "app must not know pion; the media path lives in adapters/rtc"
		}
	case strings.HasPrefix(from, "mediasvc/adapters/"):
		self := "mediasvc/adapters/" + strings.SplitN(strings.TrimPrefix(from, "mediasvc/adapters/"), "/", 2)[0]
		if strings.HasPrefix(to, "mediasvc/adapters/") && to != self && !strings.HasPrefix(to, self+"/") {
			return "adapters never import each other; cmd wires them"
		}
		if to == "mediasvc/app" && self != "mediasvc/adapters/httpapi" {
			return "only the inbound httpapi adapter calls app"
		}
		if strings.HasPrefix(to, "mediasvc/cmd") || strings.HasPrefix(to, "mediasvc/e2e") {
			return "adapters do not import cmd or e2e"
		}
	case strings.HasPrefix(from, "mediasvc/e2e"):
		if ours && !strings.HasPrefix(to, "mediasvc/e2e") && to != "mediasvc/domain" {
			return "e2e drives the binary from outside; it may share only domain's pure helpers"
		}
	}
	return ""
}

func TestAllowedRejectsBentShapes(t *testing.T) {
	for _, tc := range [][2]string{
		{"mediasvc/domain", "mediasvc/ports"},
		{"mediasvc/domain", "github.com/pion/rtp"},
		{"mediasvc/app", "mediasvc/adapters/rtc"},
		{"mediasvc/app", "github.com/pion/webrtc/v4"},
		{"mediasvc/adapters/rtc", "mediasvc/adapters/demo"},
		{"mediasvc/adapters/demo", "mediasvc/app"},
		{"mediasvc/ports", "mediasvc/app"},
	} {
		if allowed(tc[0], tc[1]) == "" {
			t.Errorf("%s → %s allowed", tc[0], tc[1])
		}
	}
	for _, tc := range [][2]string{
		{"mediasvc/domain", "fmt"},
		{"mediasvc/app", "mediasvc/ports"},
		{"mediasvc/adapters/httpapi", "mediasvc/app"},
		{"mediasvc/adapters/httpapi/httpapitest", "mediasvc/adapters/httpapi"},
		{"mediasvc/cmd/mediasvc", "mediasvc/adapters/rtc"},
	} {
		if why := allowed(tc[0], tc[1]); why != "" {
			t.Errorf("%s → %s refused: %s", tc[0], tc[1], why)
		}
	}
}
