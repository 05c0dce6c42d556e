package rtc

import "syscall"

// slabChunks is how many chunks one mapping holds (1 MiB): few mappings
// for the kernel to track however many rings grow.
const slabChunks = 16

// chunkMemory maps chunk memory outside the Go heap.
type chunkMemory struct{}

// alloc maps a slab and cuts it into chunks; if the kernel refuses, the
// chunks come from the heap instead.
func (m *chunkMemory) alloc() []*chunk {
	b, err := syscall.Mmap(-1, 0, slabChunks*chunkSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return []*chunk{{buf: make([]byte, chunkSize), heap: true}}
	}
	out := make([]*chunk, slabChunks)
	for i := range out {
		out[i] = &chunk{buf: b[i*chunkSize : (i+1)*chunkSize : (i+1)*chunkSize]}
	}
	return out
}

// release gives the pages of b (a mapped chunk) back to the OS; b stays
// mapped and reads zeros until written again.
func (m *chunkMemory) release(b []byte) {
	_ = syscall.Madvise(b, syscall.MADV_DONTNEED)
}
