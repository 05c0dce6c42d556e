// Package mp4rec stores recordings of device streams as fragmented MP4
// files, muxed by bluenviron/mediacommon's fmp4 package: H.264 passed
// through as the capture sends it (SPS/PPS of the first keyframe in avcC,
// and every keyframe's own in-band, so a decoder follows a rotation) and
// Opus when the stream has it.
//
// Each recording is two files in one directory, named only from its id
// (16 hex digits the service chose): <id>.mp4 and <id>.json (its
// metadata, rewritten after every fragment). The directory is the index:
// a restarted service lists what it finds there, and a recording whose
// service died is marked interrupted and cut back to its last complete
// fragment, so it still plays.
package mp4rec

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"mediasvc/domain"
	"mediasvc/ports"
)

var _ ports.RecordingStore = (*Store)(nil)

// Store is a directory of recordings.
type Store struct {
	dir string
	log *slog.Logger

	mu     sync.Mutex
	active map[domain.RecordingID]*Writer
}

// Open returns the store of dir, which need not exist yet (it is made at
// the first recording). Recordings left running by a service that died
// are marked interrupted and truncated to their last complete fragment.
func Open(dir string, log *slog.Logger) (*Store, error) {
	if dir == "" {
		return nil, errors.New("open recordings: no directory")
	}
	s := &Store{dir: dir, log: log, active: make(map[domain.RecordingID]*Writer)}
	recs, err := s.scan()
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		if r.State != domain.RecordingActive {
			continue
		}
		if err := s.recover(r); err != nil {
			log.Warn("recover interrupted recording", "recording_id", r.ID, "err", err)
		}
	}
	return s, nil
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) mp4Path(id domain.RecordingID) string { return filepath.Join(s.dir, string(id)+".mp4") }
func (s *Store) metaPath(id domain.RecordingID) string {
	return filepath.Join(s.dir, string(id)+".json")
}

// meta is what <id>.json holds.
type meta struct {
	domain.Recording
	DurationMS int64 `json:"duration_ms"`
}

func (s *Store) readMeta(id domain.RecordingID) (domain.Recording, error) {
	b, err := os.ReadFile(s.metaPath(id))
	if errors.Is(err, fs.ErrNotExist) {
		return domain.Recording{}, fmt.Errorf("recording %s: %w", id, domain.ErrRecordingNotFound)
	}
	if err != nil {
		return domain.Recording{}, fmt.Errorf("read recording %s: %w", id, err)
	}
	var m meta
	if err := json.Unmarshal(b, &m); err != nil {
		return domain.Recording{}, fmt.Errorf("read recording %s: %w", id, err)
	}
	if m.ID != id {
		return domain.Recording{}, fmt.Errorf("recording %s: metadata names %q: %w", id, m.ID, domain.ErrRecordingNotFound)
	}
	m.Recording.Duration = msDuration(m.DurationMS)
	if st, err := os.Stat(s.mp4Path(id)); err == nil {
		m.Recording.Bytes = st.Size()
	}
	return m.Recording, nil
}

// writeMeta replaces <id>.json atomically (a temp file renamed over it).
func (s *Store) writeMeta(r domain.Recording) error {
	b, err := json.Marshal(meta{Recording: r, DurationMS: r.Duration.Milliseconds()})
	if err != nil {
		return err
	}
	tmp := s.metaPath(r.ID) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o640); err != nil {
		return fmt.Errorf("write recording metadata: %w", err)
	}
	if err := os.Rename(tmp, s.metaPath(r.ID)); err != nil {
		return fmt.Errorf("write recording metadata: %w", err)
	}
	return nil
}

// scan reads every recording's metadata in the directory.
func (s *Store) scan() ([]domain.Recording, error) {
	ents, err := os.ReadDir(s.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list recordings: %w", err)
	}
	var out []domain.Recording
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !domain.RecordingID(name).Valid() {
			continue
		}
		r, err := s.readMeta(domain.RecordingID(name))
		if err != nil {
			s.log.Warn("skip unreadable recording", "recording_id", name, "err", err)
			continue
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b domain.Recording) int {
		if c := a.StartedAt.Compare(b.StartedAt); c != 0 {
			return c
		}
		return strings.Compare(string(a.ID), string(b.ID))
	})
	return out, nil
}

// recover marks r interrupted and cuts its file after its last complete
// fragment (or its init segment if none completed).
func (s *Store) recover(r domain.Recording) error {
	f, err := os.OpenFile(s.mp4Path(r.ID), os.O_RDWR, 0)
	if err != nil {
		return err
	}
	end, err := lastCompleteFragment(f)
	if err == nil {
		err = f.Truncate(end)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	r.State = domain.RecordingInterrupted
	if r.StopReason == "" {
		r.StopReason = "interrupted"
	}
	r.Bytes = end
	return s.writeMeta(r)
}

// lastCompleteFragment walks the top-level boxes of an MP4 file and
// returns the offset just after the last complete mdat (or after moov
// when no fragment completed): where the file still parses.
func lastCompleteFragment(f *os.File) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := st.Size()
	var off, good int64
	var hdr [16]byte
	for off+8 <= size {
		if _, err := f.ReadAt(hdr[:8], off); err != nil {
			return good, nil
		}
		boxSize := int64(binary.BigEndian.Uint32(hdr[:4]))
		typ := string(hdr[4:8])
		if boxSize == 1 {
			if _, err := f.ReadAt(hdr[8:16], off+8); err != nil {
				return good, nil
			}
			boxSize = int64(binary.BigEndian.Uint64(hdr[8:16]))
		}
		if boxSize < 8 || off+boxSize > size {
			break
		}
		off += boxSize
		if typ == "mdat" || typ == "moov" {
			good = off
		}
	}
	return good, nil
}

// Create implements ports.RecordingStore.
func (s *Store) Create(rec domain.Recording, info domain.StreamInfo) (ports.RecordingWriter, error) {
	if !rec.ID.Valid() {
		return nil, fmt.Errorf("recording id %q: %w", rec.ID, domain.ErrInvalidRequest)
	}
	if info.Video != domain.CodecH264 {
		return nil, fmt.Errorf("record %s: video codec %q is not H.264: %w", rec.Device, info.Video, domain.ErrInvalidRequest)
	}
	if err := os.MkdirAll(s.dir, 0o750); err != nil {
		return nil, fmt.Errorf("create recordings directory: %w", err)
	}
	f, err := os.OpenFile(s.mp4Path(rec.ID), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return nil, fmt.Errorf("create recording %s: %w", rec.ID, err)
	}
	rec.State = domain.RecordingActive
	rec.Video = info.Video
	if info.Audio == domain.CodecOpus {
		rec.Audio = domain.CodecOpus
	}
	rec.Width, rec.Height = info.Width, info.Height
	if err := s.writeMeta(rec); err != nil {
		_ = f.Close()
		_ = os.Remove(s.mp4Path(rec.ID))
		return nil, err
	}
	w := newWriter(s, f, rec, info)
	s.mu.Lock()
	s.active[rec.ID] = w
	s.mu.Unlock()
	return w, nil
}

// List implements ports.RecordingStore.
func (s *Store) List() ([]domain.Recording, error) {
	recs, err := s.scan()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, r := range recs {
		if w, ok := s.active[r.ID]; ok {
			recs[i] = w.Recording()
		}
	}
	return recs, nil
}

// Get implements ports.RecordingStore.
func (s *Store) Get(id domain.RecordingID) (domain.Recording, error) {
	if !id.Valid() {
		return domain.Recording{}, fmt.Errorf("recording %q: %w", id, domain.ErrRecordingNotFound)
	}
	s.mu.Lock()
	w, ok := s.active[id]
	s.mu.Unlock()
	if ok {
		return w.Recording(), nil
	}
	return s.readMeta(id)
}

// Open implements ports.RecordingStore.
func (s *Store) Open(id domain.RecordingID) (io.ReadSeekCloser, domain.Recording, error) {
	r, err := s.Get(id)
	if err != nil {
		return nil, domain.Recording{}, err
	}
	f, err := os.Open(s.mp4Path(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, domain.Recording{}, fmt.Errorf("recording %s: %w", id, domain.ErrRecordingNotFound)
	}
	if err != nil {
		return nil, domain.Recording{}, fmt.Errorf("open recording %s: %w", id, err)
	}
	// A running recording is read up to its last complete fragment.
	return sectionFile{SectionReader: io.NewSectionReader(f, 0, r.Bytes), f: f}, r, nil
}

type sectionFile struct {
	*io.SectionReader
	f *os.File
}

func (s sectionFile) Close() error { return s.f.Close() }

// Delete implements ports.RecordingStore.
func (s *Store) Delete(id domain.RecordingID) error {
	if !id.Valid() {
		return fmt.Errorf("recording %q: %w", id, domain.ErrRecordingNotFound)
	}
	s.mu.Lock()
	_, running := s.active[id]
	s.mu.Unlock()
	if running {
		return fmt.Errorf("recording %s is running; stop it first: %w", id, domain.ErrConflict)
	}
	if _, err := s.readMeta(id); err != nil {
		return err
	}
	if err := os.Remove(s.mp4Path(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete recording %s: %w", id, err)
	}
	if err := os.Remove(s.metaPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete recording %s: %w", id, err)
	}
	return nil
}

func (s *Store) finished(id domain.RecordingID) {
	s.mu.Lock()
	delete(s.active, id)
	s.mu.Unlock()
}

func msDuration(ms int64) time.Duration { return time.Duration(ms) * time.Millisecond }
