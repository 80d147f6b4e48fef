package journal

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// DefaultMaxInterval is how long a streak of repeats may run before
// Repeats writes its summary and starts a new one.
const DefaultMaxInterval = 10 * time.Minute

// Repeats keeps the journal quiet when the same record recurs, such as a
// deploy denied on every retry while the host is busy. The journal is
// append-only and chained, so a record cannot be updated as it repeats;
// instead the first record of a streak is written at once, its repeats are
// only counted, and when the streak ends one summary record is written:
// the streak's last record with Count, FirstSeen and LastSeen set.
//
// A streak ends when a different record is appended under its key, on
// End(key), on Flush (when the daemon stops), on Sweep once it is
// MaxInterval old, or when a repeat comes MaxInterval after the streak's
// first record (that repeat is then written, and starts the next streak).
// A streak of one record needs no summary.
//
// Counted repeats live in memory until their summary is written: a crash
// loses at most MaxInterval of them, never the first record of a streak.
//
// A record repeats the streak's when it is the same but for its time:
// Timestamp and Prev never count. When the record has Codes, they stand
// for its Reasons, Message and Details, whose figures may change between
// readings. Everything else, User and a decision's Input included, must be
// equal: a decision on other readings is another decision, written with
// its own input, so that every decision can be re-evaluated from the
// journal (swiftctl policy replay) and a summary's input is that of every
// occurrence it counts.
//
// The zero value is ready to use. Repeats is safe for concurrent use.
type Repeats struct {
	// MaxInterval bounds a streak's length; DefaultMaxInterval if zero.
	MaxInterval time.Duration
	// Now stamps records with a zero Timestamp and summaries; time.Now if
	// nil.
	Now func() time.Time

	mu      sync.Mutex
	streaks map[string]*streak
}

// streak is one run of repeats under a key.
type streak struct {
	key   string
	same  string    // what a repeat must equal, see sameness
	first time.Time // Timestamp of the record written at once
	last  Record    // the latest record of the streak
	count int       // records in the streak, the first included
}

// Append journals rec under key, or counts it if it repeats the record
// before it under that key. A zero Timestamp is set from Now before
// comparing, so a counted repeat keeps its time. It fails, and counts
// nothing, if rec is invalid or the journal refuses a write; a streak whose
// summary could not be written is kept for the next try, and rec is then
// not written either, so that the journal keeps its order.
func (r *Repeats) Append(j *Journal, key string, rec Record) error {
	if rec.Count != 0 || !rec.FirstSeen.IsZero() || !rec.LastSeen.IsZero() {
		return fmt.Errorf("repeats %s: record fields count, first_seen and last_seen are Repeats' own; leave them unset", key)
	}
	if err := rec.validate(); err != nil {
		return fmt.Errorf("repeats %s: %w", key, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if rec.Timestamp.IsZero() {
		rec.Timestamp = r.now()
	}
	rec.Timestamp = rec.Timestamp.UTC()
	same, err := sameness(rec)
	if err != nil {
		return fmt.Errorf("repeats %s: %w", key, err)
	}
	if s := r.streaks[key]; s != nil {
		if s.same == same && rec.Timestamp.Sub(s.first) < r.maxInterval() {
			s.count++
			s.last = rec
			return nil
		}
		if err := r.end(j, s); err != nil {
			return err
		}
	}
	if err := j.Append(rec); err != nil {
		return err
	}
	if r.streaks == nil {
		r.streaks = map[string]*streak{}
	}
	r.streaks[key] = &streak{key: key, same: same, first: rec.Timestamp, last: rec, count: 1}
	return nil
}

// End ends the streak under key, writing its summary if it has repeats.
func (r *Repeats) End(j *Journal, key string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.streaks[key]; s != nil {
		return r.end(j, s)
	}
	return nil
}

// Flush ends every streak, oldest first. Call it before closing the
// journal, or the counted repeats are lost.
func (r *Repeats) Flush(j *Journal) error {
	return r.endWhere(j, func(time.Time, *streak) bool { return true })
}

// Sweep ends the streaks that began MaxInterval ago or earlier, so that a
// streak whose repeats stopped coming is summarised in time. Call it now
// and then (every minute, say).
func (r *Repeats) Sweep(j *Journal) error {
	return r.endWhere(j, func(now time.Time, s *streak) bool { return now.Sub(s.first) >= r.maxInterval() })
}

func (r *Repeats) endWhere(j *Journal, match func(now time.Time, s *streak) bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	var ending []*streak
	for _, s := range r.streaks {
		if match(now, s) {
			ending = append(ending, s)
		}
	}
	// Oldest first, so the summaries come in the order the streaks began.
	slices.SortFunc(ending, func(a, b *streak) int {
		return cmp.Or(a.first.Compare(b.first), cmp.Compare(a.key, b.key))
	})
	var errs []error
	for _, s := range ending {
		errs = append(errs, r.end(j, s))
	}
	return errors.Join(errs...)
}

// end writes s's summary, if it has repeats, and forgets s. If the write
// fails, s is kept.
func (r *Repeats) end(j *Journal, s *streak) error {
	if s.count > 1 {
		sum := s.last
		sum.Count, sum.FirstSeen, sum.LastSeen = s.count, s.first, s.last.Timestamp
		// Stamped when written, and never before the repeat it covers.
		sum.Timestamp = r.now().UTC()
		if sum.Timestamp.Before(sum.LastSeen) {
			sum.Timestamp = sum.LastSeen
		}
		if err := j.Append(sum); err != nil {
			return fmt.Errorf("repeats %s: summary of %d records: %w", s.key, s.count, err)
		}
	}
	delete(r.streaks, s.key)
	return nil
}

func (r *Repeats) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Repeats) maxInterval() time.Duration {
	if r.MaxInterval > 0 {
		return r.MaxInterval
	}
	return DefaultMaxInterval
}

// sameness is what a record must have in common with another to repeat
// it: the record without its time (see Repeats).
func sameness(r Record) (string, error) {
	r.Timestamp, r.Prev = time.Time{}, ""
	if len(r.Codes) > 0 {
		r.Reasons, r.Message, r.Details = nil, "", nil
	}
	b, err := json.Marshal(r)
	if err != nil {
		return "", fmt.Errorf("encode %s: %w", describe(r), err)
	}
	return string(b), nil
}
