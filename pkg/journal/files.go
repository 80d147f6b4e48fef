package journal

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// ErrLocked means another process (normally another swiftdeployd) holds the
// journal open for writing.
var ErrLocked = errors.New("journal is locked by another process")

// File naming. For an active file "history.jsonl":
//
//	history.1.jsonl, history.2.jsonl, ...  rotated files, oldest first
//	history.jsonl.lock                     advisory lock held by the writer
//	history.jsonl.torn-<unix seconds>      bytes of a torn tail set aside on Open
//
// Rotated files count up so that a file, once rotated, never moves again.
const (
	lockSuffix = ".lock"
	tornInfix  = ".torn-"
)

// rotatedName is the name of the n-th rotated file of the journal at path.
func rotatedName(path string, n int) string {
	dir, stem, ext := splitPath(path)
	return filepath.Join(dir, stem+"."+strconv.Itoa(n)+ext)
}

func splitPath(path string) (dir, stem, ext string) {
	dir, base := filepath.Split(path)
	ext = filepath.Ext(base)
	return dir, strings.TrimSuffix(base, ext), ext
}

// rotatedNumbers lists the numbers of the rotated files of the journal at
// path, ascending (oldest first).
func rotatedNumbers(path string) ([]int, error) {
	dir, stem, ext := splitPath(path)
	entries, err := os.ReadDir(filepath.Clean(dir + "."))
	if err != nil {
		return nil, fmt.Errorf("list journal directory of %s: %w", path, err)
	}
	prefix := stem + "."
	var nums []int
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || len(name) <= len(prefix)+len(ext) ||
			!strings.HasPrefix(name, prefix) || !strings.HasSuffix(name, ext) {
			continue
		}
		digits := name[len(prefix) : len(name)-len(ext)]
		n, err := strconv.Atoi(digits)
		// Requiring the canonical spelling keeps "history.01.jsonl" or
		// "history.+1.jsonl" from being read as part of the chain.
		if err != nil || n < 1 || strconv.Itoa(n) != digits {
			continue
		}
		nums = append(nums, n)
	}
	slices.Sort(nums)
	return nums, nil
}

// journalFiles lists every file of the journal at path in chain order:
// rotated files oldest first, then the active file if it exists. It fails
// with an error wrapping fs.ErrNotExist when there is no file at all.
func journalFiles(path string) ([]string, error) {
	nums, err := rotatedNumbers(path)
	if err != nil {
		return nil, err
	}
	files := make([]string, 0, len(nums)+1)
	for _, n := range nums {
		files = append(files, rotatedName(path, n))
	}
	switch _, err := os.Stat(path); {
	case err == nil:
		files = append(files, path)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("stat journal %s: %w", path, err)
	case len(files) == 0:
		return nil, fmt.Errorf("journal %s: %w", path, fs.ErrNotExist)
	}
	return files, nil
}

// lockJournal takes the writer's advisory lock. The lock lives on a separate
// file because the active file is renamed on rotation: a lock on it would
// stop protecting the path.
func lockJournal(path string) (*os.File, error) {
	name := path + lockSuffix
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open journal lock %s: %w", name, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("open journal %s: %w (is another swiftdeployd running on this project?)", path, ErrLocked)
		}
		return nil, fmt.Errorf("lock journal %s: %w", name, err)
	}
	return f, nil
}

// syncDir makes renames and file creations in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// lineStart returns the offset of the first byte of the line that ends just
// before end, scanning f backwards; 0 if no newline precedes end.
func lineStart(f *os.File, end int64) (int64, error) {
	buf := make([]byte, 32<<10)
	for pos := end; pos > 0; {
		n := min(int64(len(buf)), pos)
		pos -= n
		if _, err := f.ReadAt(buf[:n], pos); err != nil {
			return 0, fmt.Errorf("read %s at %d: %w", f.Name(), pos, err)
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			return pos + int64(i) + 1, nil
		}
	}
	return 0, nil
}

// lastLine returns the last newline-terminated line of the file at name
// (without its newline), or nil if the file has no complete line.
func lastLine(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("open journal file %s: %w", name, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat journal file %s: %w", name, err)
	}
	end, err := completeEnd(f, st.Size())
	if err != nil || end == 0 {
		return nil, err
	}
	return readLine(f, end)
}

// completeEnd is the offset just past the last newline of f (size bytes).
func completeEnd(f *os.File, size int64) (int64, error) {
	if size == 0 {
		return 0, nil
	}
	var last [1]byte
	if _, err := f.ReadAt(last[:], size-1); err != nil {
		return 0, fmt.Errorf("read %s at %d: %w", f.Name(), size-1, err)
	}
	if last[0] == '\n' {
		return size, nil
	}
	return lineStart(f, size)
}

// readLine reads the line whose newline is at end-1.
func readLine(f *os.File, end int64) ([]byte, error) {
	start, err := lineStart(f, end-1)
	if err != nil {
		return nil, err
	}
	if end-1-start > MaxLineBytes {
		return nil, fmt.Errorf("journal file %s: line at offset %d is longer than %d bytes", f.Name(), start, MaxLineBytes)
	}
	b := make([]byte, end-1-start)
	if _, err := f.ReadAt(b, start); err != nil {
		return nil, fmt.Errorf("read %s at %d: %w", f.Name(), start, err)
	}
	return b, nil
}
