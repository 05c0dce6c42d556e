package redisstore

import (
	"testing"

	"mediasvc/domain"
)

// TestSlot checks the slot function against values Redis Cluster's own
// specification gives (CRC16 of "123456789" is 0x31C3) and the hash tag
// rules: only the first {…} counts, an empty one does not.
func TestSlot(t *testing.T) {
	for _, c := range []struct {
		key  string
		want int
	}{
		{"123456789", 0x31C3},
		{"{user1000}.following", Slot("user1000")},
		{"foo{}{bar}", Slot("foo{}{bar}")},
		{"foo{{bar}}zap", Slot("{bar")},
		{"foo{bar}{zap}", Slot("bar")},
	} {
		if got := Slot(c.key); got != c.want {
			t.Errorf("Slot(%q) = %d, want %d", c.key, got, c.want)
		}
	}
	if Slot("foo{}{bar}") == Slot("bar") {
		t.Error("an empty first tag must not make {bar} the tag")
	}
}

// TestShardTagsSpread checks that shard n's tag lies in the n-th
// sixteenth of the slot range, and that a session's keys share one slot.
func TestShardTagsSpread(t *testing.T) {
	for n, tag := range shardTags {
		if got := Slot(tag) * Shards / 16384; got != n {
			t.Errorf("shard %d tag %q is in slot %d (part %d)", n, tag, Slot(tag), got)
		}
	}
	k := newKeys("mediasvc:")
	for _, id := range []domain.SessionID{"a", "b", "x-123", "{weird}", "}"} {
		if Slot(k.session(id)) != Slot(k.expiry(shardOf(id))) {
			t.Errorf("session %q: hash and expiry entry in different slots", id)
		}
	}
	for _, d := range []domain.DeviceID{"demo", "emulator-5554", "a}b", "{x}"} {
		ks := k.device(d)
		if Slot(ks[0]) != Slot(ks[1]) || Slot(ks[1]) != Slot(ks[2]) {
			t.Errorf("device %q: lease keys %v in different slots", d, ks)
		}
	}
	q := k.quota()
	if Slot(q[0]) != Slot(q[1]) || Slot(q[1]) != Slot(q[2]) || Slot(k.instance("a")) != Slot(k.instances()) {
		t.Error("quota or registry keys in different slots")
	}
}
