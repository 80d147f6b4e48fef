// Package atomicfile replaces files so that a reader (nginx, docker
// compose, a user's editor, swiftdeployd) never sees half of one.
package atomicfile

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
)

// Write writes data to a temp file beside path, fsyncs it and renames it
// into place.
func Write(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(f.Name()) // a no-op once renamed
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// WriteIfChanged writes data to path only when its bytes differ, and
// reports whether it wrote.
// Unchanged bytes under another mode (a file an older version wrote
// 0644) get perm: the mode is part of what is written.
func WriteIfChanged(path string, data []byte, perm os.FileMode) (bool, error) {
	old, err := os.ReadFile(path)
	if err == nil && bytes.Equal(old, data) {
		return false, fixMode(path, perm)
	}
	return true, Write(path, data, perm)
}

// fixMode sets path's permission bits to perm if they differ.
func fixMode(path string, perm os.FileMode) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	if fi.Mode().Perm() != perm.Perm() {
		if err := os.Chmod(path, perm); err != nil {
			return fmt.Errorf("chmod %s: %w", path, err)
		}
	}
	return nil
}

// MkdirAll is os.MkdirAll that also gives an existing directory at path
// the mode perm: a state directory an older version made 0755 is
// tightened, not kept.
func MkdirAll(path string, perm os.FileMode) error {
	if err := os.MkdirAll(path, perm); err != nil {
		return err
	}
	return fixMode(path, perm)
}
