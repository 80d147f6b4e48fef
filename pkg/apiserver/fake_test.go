package apiserver

import (
	"context"
	"net/http"
	"sync"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// fakeController records the calls the API makes and answers with what a
// test set: the API's own logic (roles, refusals, status codes,
// streaming) is tested without a daemon behind it.
type fakeController struct {
	mu      sync.Mutex
	calls   []string
	refused []journal.Record
	traffic []*stack.Traffic

	err      error // returned by every operation that can fail
	actErr   error // Acting
	progress []string
	diff     api.Diff
	chaos    api.ChaosResult
	// logs, when set, is Logs' copy; logsErr its failure.
	logs    func(ctx context.Context, emit func(api.LogLine) error) error
	logsErr error
}

func (f *fakeController) call(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, name)
}

func (f *fakeController) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeController) Refusals() []journal.Record {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]journal.Record(nil), f.refused...)
}

func (f *fakeController) transition(name string, progress func(string)) error {
	f.call(name)
	for _, l := range f.progress {
		progress(l)
	}
	return f.err
}

func (f *fakeController) Status(context.Context) api.Status { f.call("status"); return api.Status{} }
func (f *fakeController) Validate(context.Context) api.Validation {
	f.call("validate")
	return api.Validation{}
}
func (f *fakeController) Diff(context.Context, bool, bool) (api.Diff, error) {
	f.call("diff")
	return f.diff, f.err
}
func (f *fakeController) History(journal.Filter, int) ([]journal.Record, error) {
	f.call("history")
	return nil, f.err
}
func (f *fakeController) Releases(context.Context, string) (api.Releases, error) {
	f.call("releases")
	return api.Releases{}, f.err
}
func (f *fakeController) Logs(ctx context.Context, q api.LogQuery) (func(emit func(api.LogLine) error) error, error) {
	f.call("logs")
	if f.logsErr != nil {
		return nil, f.logsErr
	}
	return func(emit func(api.LogLine) error) error {
		if f.logs == nil {
			return nil
		}
		return f.logs(ctx, emit)
	}, nil
}
func (f *fakeController) Deploy(_ context.Context, _ string, p func(string)) error {
	return f.transition("deploy", p)
}
func (f *fakeController) Promote(_ context.Context, _ string, _ api.PromoteRequest, p func(string)) error {
	return f.transition("promote", p)
}
func (f *fakeController) Rollback(_ context.Context, _ string, _ api.RollbackRequest, p func(string)) error {
	return f.transition("rollback", p)
}
func (f *fakeController) Abort(_ context.Context, _ string, _ api.AbortRequest, p func(string)) error {
	return f.transition("abort", p)
}
func (f *fakeController) Down(_ context.Context, _ string, _ bool, p func(string)) error {
	return f.transition("down", p)
}
func (f *fakeController) Traffic(_ context.Context, _ string, hold *stack.Traffic, p func(string)) error {
	f.mu.Lock()
	f.traffic = append(f.traffic, hold)
	f.mu.Unlock()
	return f.transition("traffic", p)
}
func (f *fakeController) SetPaused(string, string, bool) error { f.call("pause"); return f.err }
func (f *fakeController) Chaos(context.Context, string, api.ChaosRequest) (api.ChaosResult, error) {
	f.call("chaos")
	return f.chaos, f.err
}
func (f *fakeController) Acting() error { return f.actErr }
func (f *fakeController) Metrics() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { f.call("metrics") })
}
func (f *fakeController) Refused(_ string, rec journal.Record) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refused = append(f.refused, rec)
}
func (f *fakeController) SocketRecreated(string) { f.call("socket_recreated") }
