package journal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/swiftdeploy/swiftdeploy/pkg/failpoint"
)

// maxReusedBuf is the largest write buffer kept between writes.
const maxReusedBuf = 64 << 10

// commit writes lines in order, rotating the active file whenever the next
// line would take it past MaxBytes, and returns how many lines are durable.
func (j *Journal) commit(lines []line) (int, error) {
	done := 0
	for done < len(lines) {
		var n int
		var size int64
		for _, l := range lines[done:] {
			next := int64(len(l.bytes)) + 1
			if j.opts.MaxBytes > 0 && j.size+size > 0 && j.size+size+next > j.opts.MaxBytes {
				break
			}
			size += next
			n++
		}
		if n == 0 {
			if err := j.rotate(); err != nil {
				return done, err
			}
			continue
		}
		if err := j.write(lines[done : done+n]); err != nil {
			return done, err
		}
		done += n
	}
	return done, nil
}

// write appends lines to the active file and fsyncs it. On failure it cuts
// the file back to its last complete line so no half line remains.
func (j *Journal) write(lines []line) error {
	buf := j.buf[:0]
	for _, l := range lines {
		buf = append(buf, l.bytes...)
		buf = append(buf, '\n')
	}
	if cap(buf) <= maxReusedBuf {
		j.buf = buf
	}
	_, err := j.writeBuf(buf)
	if err != nil {
		err = fmt.Errorf("write journal: %w", err) // err names the file
	} else if serr := j.sync(); serr != nil {
		// After a failed fsync the written bytes may or may not reach the
		// disk; cutting them off makes the outcome certain.
		err = fmt.Errorf("sync journal: %w", serr)
	}
	if err != nil {
		if terr := j.f.Truncate(j.size); terr != nil {
			j.broken = fmt.Errorf("truncate journal %s back to %d bytes: %w", j.path, j.size, terr)
			return errors.Join(err, j.broken)
		}
		return err
	}
	j.size += int64(len(buf))
	j.head = lines[len(lines)-1].hash
	return nil
}

func (j *Journal) sync() error {
	if j.opts.Sync != nil {
		return j.opts.Sync(j.f)
	}
	return j.f.Sync()
}

// writeBuf writes buf to the active file. With failpoints armed it writes
// the first half, hits failpoint.JournalAppend (which may kill the process,
// leaving a torn line for the next Open to set aside), then the rest.
func (j *Journal) writeBuf(buf []byte) (int, error) {
	if !failpoint.Armed() || len(buf) < 2 {
		return j.f.Write(buf)
	}
	n, err := j.f.Write(buf[:len(buf)/2])
	if err != nil {
		return n, err
	}
	failpoint.Hit(failpoint.JournalAppend)
	m, err := j.f.Write(buf[len(buf)/2:])
	return n + m, err
}

// rotate renames the active file to the next rotated name and starts a new,
// empty active file; the chain simply continues into it.
func (j *Journal) rotate() error {
	next := j.rotated + 1
	dst := rotatedName(j.path, next)
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("rotate journal %s: %s already exists", j.path, dst)
	}
	if err := os.Rename(j.path, dst); err != nil {
		return fmt.Errorf("rotate journal %s to %s: %w", j.path, dst, err)
	}
	f, err := os.OpenFile(j.path, os.O_RDWR|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o644)
	if err != nil {
		err = fmt.Errorf("create journal %s after rotation: %w", j.path, err)
		if rerr := os.Rename(dst, j.path); rerr != nil {
			j.broken = fmt.Errorf("undo rotation of %s: %w", j.path, rerr)
			return errors.Join(err, j.broken)
		}
		return err
	}
	// Everything in the old file was fsynced when written; closing it
	// cannot lose data, so its error is not interesting.
	j.f.Close()
	j.f, j.size, j.rotated = f, 0, next
	j.rotatedNow = true
	return syncDir(filepath.Dir(j.path))
}
