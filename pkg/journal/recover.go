package journal

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
)

// recover finds the last valid line of the active file, sets aside anything
// after it, and picks up the chain and rotation state.
func (j *Journal) recover() error {
	st, err := j.f.Stat()
	if err != nil {
		return fmt.Errorf("stat journal %s: %w", j.path, err)
	}
	size := st.Size()
	good, err := completeEnd(j.f, size)
	if err != nil {
		return err
	}
	// Only the last write can be torn, but a crash can leave a whole line of
	// garbage (e.g. zeros from unwritten blocks): drop invalid lines from
	// the end until a valid one is found.
	for good > 0 {
		start, err := lineStart(j.f, good-1)
		if err != nil {
			return err
		}
		if b, ok := j.validLine(start, good-1); ok {
			j.head = hashLine(b)
			break
		}
		good = start
	}
	if good < size {
		if err := j.setAside(good, size); err != nil {
			return err
		}
	}
	j.size = good

	nums, err := rotatedNumbers(j.path)
	if err != nil {
		return err
	}
	if len(nums) > 0 {
		j.rotated = nums[len(nums)-1]
	}
	if j.size == 0 && j.rotated > 0 {
		// A fresh active file continues the chain of the newest rotated one.
		name := rotatedName(j.path, j.rotated)
		b, err := lastLine(name)
		if err != nil {
			return err
		}
		if b == nil {
			return fmt.Errorf("open journal %s: rotated file %s has no complete line to continue the chain from", j.path, name)
		}
		j.head = hashLine(b)
	}
	return nil
}

// validLine reads bytes [start, end) of the active file and reports whether
// they are one decodable record.
func (j *Journal) validLine(start, end int64) ([]byte, bool) {
	if end-start > MaxLineBytes {
		return nil, false
	}
	b := make([]byte, end-start)
	if _, err := j.f.ReadAt(b, start); err != nil {
		return nil, false
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, false
	}
	return b, true
}

// setAside copies bytes [from, to) of the active file to a new torn file,
// for forensics, then truncates the active file to from.
func (j *Journal) setAside(from, to int64) error {
	base := j.path + tornInfix + strconv.FormatInt(j.opts.Now().Unix(), 10)
	name := base
	var out *os.File
	for i := 2; ; i++ {
		var err error
		out, err = os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrExist) || i > 100 {
			return fmt.Errorf("create torn-line file %s: %w", name, err)
		}
		name = base + "-" + strconv.Itoa(i)
	}
	_, err := io.Copy(out, io.NewSectionReader(j.f, from, to-from))
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("save torn tail of journal %s to %s: %w", j.path, name, err)
	}
	if err := syncDir(filepath.Dir(j.path)); err != nil {
		return err
	}
	if err := j.f.Truncate(from); err != nil {
		return fmt.Errorf("truncate journal %s to %d bytes: %w", j.path, from, err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("sync journal %s: %w", j.path, err)
	}
	j.torn = name
	return nil
}
