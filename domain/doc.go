// Package domain holds mediasvc's pure types and rules: sessions and their
// state machine, devices, media frames, ICE limits, quality statistics, the
// bitrate policy and the sentinel errors every other package speaks in.
//
// It imports only the standard library.
package domain
