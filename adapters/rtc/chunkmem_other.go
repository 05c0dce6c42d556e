//go:build !linux

package rtc

// chunkMemory takes chunk memory from the Go heap where there is no mmap
// to lean on.
type chunkMemory struct{}

func (m *chunkMemory) alloc() []*chunk { return []*chunk{{buf: make([]byte, chunkSize), heap: true}} }

func (m *chunkMemory) release([]byte) {}
