package redisstore

import (
	"strings"

	"mediasvc/domain"
)

// The keyspace is laid out for Redis Cluster: every script and every
// MULTI touches keys of one hash slot only, because the keys it touches
// share a hash tag (the part of a key between its first "{" and the next
// "}", which alone decides the slot). The same names serve a single Redis
// and Sentinel, where the tags are just characters.
//
// P is the key prefix. Sessions are spread over Shards expiry shards; the
// shard of a session is CRC16(id) mod Shards, and shard n's keys carry
// the tag shardTags[n]:
//
//	P{sN.k}session:<id>   a session's hash, with a Redis key expiry
//	P{sN.k}expiry         the shard's sorted set of session ids by expiry µs
//
// so a Touch or an Update (hash + expiry entry) is one slot. The quota —
// a total over every session — is one slot by nature:
//
//	P{quota}index         hash: session id -> device NUL owner; the
//	                      authority on which sessions count
//	P{quota}count:device  hash: device -> sessions
//	P{quota}count:owner   hash: owner -> sessions
//
// Devices and instances have tags of their own:
//
//	P{dev:<device>}lease, P{dev:<device>}fence, P{dev:<device>}device
//	P{instances}instance:<id>, P{instances}all
//	P{bus:<instance>}req, P{bus:<instance>}rep   (bus channels)
//	P schema, P migrate:lock                      (single keys)
//
// A prefix that itself holds a "{…}" tag puts every key into that one
// slot: still correct on a cluster, just not spread.

// Shards is the number of expiry shards. It is part of the keyspace layout:
// changing it needs a migration.
const Shards = 16

// shardTags are the hash tags of the expiry shards, chosen so that tag n's
// slot lies in the n-th sixteenth of the 16384 slots (TestShardTagsSpread):
// however a cluster splits the slot range into contiguous parts, the
// shards spread over its primaries as evenly as the parts are. Migration
// 0003 carries the same table.
var shardTags = [Shards]string{
	"s0.10", "s1.13", "s2.23", "s3.20", "s4.0", "s5.3", "s6.40", "s7.43",
	"s8.23", "s9.20", "s10.22", "s11.21", "s12.2", "s13.1", "s14.41", "s15.42",
}

// keys names the store's keys under one prefix.
type keys struct {
	prefix string
	// shards[n] is the start of shard n's keys: P+"{"+shardTags[n]+"}".
	shards [Shards]string
	// index, byDevice, byOwner are the quota's keys.
	index, byDevice, byOwner string
	schema                   string
}

func newKeys(prefix string) keys {
	if prefix == "" {
		prefix = "mediasvc:"
	}
	k := keys{
		prefix:   prefix,
		index:    prefix + "{quota}index",
		byDevice: prefix + "{quota}count:device",
		byOwner:  prefix + "{quota}count:owner",
		schema:   prefix + "schema",
	}
	for n, tag := range shardTags {
		k.shards[n] = prefix + "{" + tag + "}"
	}
	return k
}

// shardOf returns the expiry shard a session id belongs to.
func shardOf(id domain.SessionID) int { return int(crc16(string(id)) % Shards) }

// session returns the key of id's hash.
func (k keys) session(id domain.SessionID) string {
	return k.shards[shardOf(id)] + "session:" + string(id)
}

// expiry returns shard n's expiry sorted set.
func (k keys) expiry(n int) string { return k.shards[n] + "expiry" }

// quota returns the quota's keys, in the order the quota scripts take
// them.
func (k keys) quota() []string { return []string{k.index, k.byDevice, k.byOwner} }

// device returns the keys of a device's lease, fencing counter and record.
func (k keys) device(d domain.DeviceID) []string {
	tag := k.prefix + "{dev:" + string(d) + "}"
	return []string{tag + "lease", tag + "fence", tag + "device"}
}

// instance returns the key of an instance's registry record.
func (k keys) instance(id string) string { return k.prefix + "{instances}instance:" + id }

// instances returns the registry's sorted set of instance ids.
func (k keys) instances() string { return k.prefix + "{instances}all" }

// Slot returns the Redis Cluster hash slot of key: CRC16 of its hash tag
// (or of the whole key when it has none) mod 16384.
func Slot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16(key) % 16384)
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial 0), the checksum
// Redis Cluster slots keys by.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
