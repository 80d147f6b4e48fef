package releases

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/swiftdeploy/swiftdeploy/pkg/atomicfile"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
)

// File is the book's file in the state directory, beside state.json
// (0600). It keeps the last Keep releases of each service across the
// journal's retention; it is written after the journal and, when missing
// or behind, rebuilt from the journal (CatchUp).
const File = "releases.json"

// ErrUnreadable is ReadFile's error when the file is there but is no
// book: the book it returns is empty, to be rebuilt from the journal.
var ErrUnreadable = errors.New("releases file unreadable")

// ReadFile reads the book in dir; a missing file is an empty book.
func ReadFile(dir string) (*Book, error) {
	b := &Book{}
	path := filepath.Join(dir, File)
	raw, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return b, nil
	case err != nil:
		return nil, fmt.Errorf("read releases %s: %w", path, err)
	}
	if err := json.Unmarshal(raw, b); err != nil {
		return &Book{}, fmt.Errorf("%w: %s: %v", ErrUnreadable, path, err)
	}
	return b, nil
}

// WriteFile writes b in dir (made 0750 if missing), atomically, 0600.
func WriteFile(dir string, b *Book) error {
	raw, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return fmt.Errorf("encode releases: %w", err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("make the state directory %s: %w", dir, err)
	}
	if err := atomicfile.Write(filepath.Join(dir, File), raw, 0o600); err != nil {
		return fmt.Errorf("write releases: %w", err)
	}
	return nil
}

// CatchUp replays the journal at journalPath onto b: a release journaled
// by a daemon that died before writing the file, or a file deleted, is
// rebuilt from the records. The records are replayed in order, so a book
// already up to date ends as it was.
func (b *Book) CatchUp(journalPath string, keep int) error {
	err := journal.Read(journalPath, journal.Filter{Types: []string{journal.TypeEvent}, Events: Events}, func(r journal.Record) error {
		b.Replay(r, keep)
		return nil
	})
	if err != nil {
		return fmt.Errorf("read releases from the journal %s: %w", journalPath, err)
	}
	return nil
}
