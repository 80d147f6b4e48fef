package accesslog

import (
	"bufio"
	"os"
	"testing"
)

// BenchmarkParse parses the captured nginx lines over and over into one
// Entry, as the daemon's follower does; lines/s is the figure to read.
func BenchmarkParse(b *testing.B) {
	lines := capturedLines(b)
	var e Entry
	var bytes int64
	for _, l := range lines {
		bytes += int64(len(l)) + 1
	}
	b.SetBytes(bytes / int64(len(lines)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := ParseInto(&e, lines[i%len(lines)]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

// BenchmarkParseFresh is Parse with a new Entry per line, as a caller that
// keeps entries would; its allocations are the tries' slice.
func BenchmarkParseFresh(b *testing.B) {
	lines := capturedLines(b)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := Parse(lines[i%len(lines)]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

func capturedLines(b *testing.B) []string {
	b.Helper()
	f, err := os.Open("testdata/nginx.log")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) == 0 {
		b.Fatal("no captured lines")
	}
	return lines
}
