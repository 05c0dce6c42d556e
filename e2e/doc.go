// Package e2e holds the black-box end-to-end tests of the built mediasvc
// binary. They run behind the e2e build tag:
//
//	go test -tags e2e -count=1 -timeout 20m ./e2e/...
//
// TestMain builds ./cmd/mediasvc once; every test starts its own instance on
// a free loopback port with its own YAML config, and drives it with the pion
// viewer in e2e/client, plain HTTP and WebSocket requests, and headless
// Chromium. Instance logs are kept under e2e/artifacts/logs and shown when a
// test fails. The load generator lives in e2e/cmd/loadgen.
package e2e
