package controller

import (
	"github.com/swiftdeploy/swiftdeploy/pkg/failpoint"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
)

// withFailpoints puts the crash suite's apply points ("apply/before:<op>",
// "apply/after:<op>") around every operation, then calls h (the tests'
// hook). Unarmed, it costs one atomic load per operation.
func withFailpoints(h reconciler.Hook) reconciler.Hook {
	return func(point string, op reconciler.Op) error {
		if failpoint.Armed() {
			failpoint.Hit(failpoint.Apply(point, string(op.Kind)))
		}
		if h != nil {
			return h(point, op)
		}
		return nil
	}
}

// transitionPoint names a failpoint of a promotion or rollback: stage is
// "pending", "applied" or "journaled".
func transitionPoint(kind, stage string) string { return kind + "/" + stage }
