package journal

import (
	"testing"
	"time"
)

func benchSnapshot() Record {
	return Record{
		Type: TypeSnapshot, Mode: "canary", Track: "canary",
		ReqPerSec: Float(15), P99Latency: Float(620), ErrorRate: Float(0.03), Policy: PolicyFail,
	}
}

// BenchmarkAppend measures one durable append: encode, write and fsync.
func BenchmarkAppend(b *testing.B) {
	j, err := Open(b.TempDir()+"/history.jsonl", Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	r := NewEvent(EventContainerCreated, "created swiftdeploy-app-stable-1")
	b.ReportAllocs()
	for b.Loop() {
		if err := j.Append(r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendBuffered measures queueing a snapshot; the writes and
// fsyncs happen in batches, including the final one in Close.
func BenchmarkAppendBuffered(b *testing.B) {
	j, err := Open(b.TempDir()+"/history.jsonl", Options{FlushInterval: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	r := benchSnapshot()
	b.ReportAllocs()
	for b.Loop() {
		if err := j.AppendBuffered(r); err != nil {
			b.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		b.Fatal(err)
	}
}
