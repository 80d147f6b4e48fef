package controller

import (
	"strings"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
)

// A rollback of a service other than the primary that rolled out in the
// cluster before its daemon died, and a manifest edited while the
// daemon was down: the restarted daemon settles it from the workload it
// changed, read by its object name, never from the manifest read now. It
// took effect, so it is journaled once (rolled_back) and never dropped
// (transition_aborted), whether the operator renamed the service away,
// removed it, changed its kind, or edited another service (the primary's
// image, whose route check the rollback never changed).
func TestKubeInterruptedServiceRollbackSettlesAfterAnEdit(t *testing.T) {
	const worker = "  worker:\n    image: app:2\n"
	edited := kubeThree("app:2", "app:2", "app:2", "app:2")
	for _, tc := range []struct {
		name, service, workload, image, edit string
		// stays: the rollback still stands after the restart's reconcile
		// (the workload runs the release).
		stays bool
	}{
		{"worker renamed", "worker", "demo-worker", "app:1", strings.Replace(edited, worker, "  jobs:\n    image: app:2\n", 1), false},
		{"worker removed", "worker", "demo-worker", "app:1", strings.Replace(edited, worker, "", 1), false},
		{"worker made an accessory", "worker", "demo-worker", "app:1",
			strings.Replace(edited, worker, "  worker:\n    kind: accessory\n    image: app:2\n    port: 6379\n", 1), false},
		{"db renamed", "db", "demo-db", "app:3",
			strings.NewReplacer("  db:\n", "  store:\n", "depends_on: [db]", "depends_on: [store]").Replace(edited), false},
		{"primary's image edited", "worker", "demo-worker", "app:1", kubeThree("app:5", "app:2", "app:2", "app:2"), true},
		{"www's image edited", "worker", "demo-worker", "app:1", kubeThree("app:2", "app:5", "app:2", "app:2"), true},
		{"worker rolled back, db's image edited", "worker", "demo-worker", "app:1", kubeThree("app:2", "app:2", "app:2", "app:4"), true},
		{"www rolled back, primary's image edited", "www", "demo-www", "app:1", kubeThree("app:5", "app:2", "app:2", "app:2"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, fk := kubeThreeReleases(t)
			h.d.target = &crashingTarget{Target: h.d.kt, apply: true}
			st := killedRollback(t, h, tc.service)
			txn := st.Pending.ID
			if got := fk.workloadImage(tc.workload); got != tc.image {
				t.Fatalf("after the crash %s runs %s, want %s rolled out", tc.workload, got, tc.image)
			}
			// The edit while the daemon is down; the restarted daemon.
			h.d.jr.Close()
			h.write(tc.edit)
			h.d = h.newDaemon()
			restartKube(h, fk)
			if err := h.reconcile(); err != nil {
				t.Fatal(err)
			}
			recs := h.records(journal.TypeEvent)
			var mine []journal.Record
			for _, r := range recs {
				if r.Details["txn"] == txn {
					mine = append(mine, r)
				}
			}
			if len(mine) != 1 || mine[0].Event != journal.EventRolledBack || mine[0].Details["service"] != tc.service {
				t.Fatalf("records of the rollback %s: %v, want one rolled_back of %s; events %v", txn, names(mine), tc.service, h.events())
			}
			if n := countRecs(recs, journal.EventTransitionAborted); n != 0 {
				t.Fatalf("the restart dropped a rollback that had taken effect: %v", h.events())
			}
			if st := h.state(); st.Pending != nil {
				t.Fatalf("still pending after the restart: %+v", st.Pending)
			}
			if tc.stays {
				if got := fk.workloadImage(tc.workload); got != tc.image {
					t.Errorf("%s runs %s after the restart's reconcile, want the release's %s", tc.workload, got, tc.image)
				}
			}
		})
	}
}
