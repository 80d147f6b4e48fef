package kubetarget

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/swiftdeploy/swiftdeploy/pkg/kube"
)

// ForceAfterConflict: an apply of a changed object that conflicts (someone
// else took a field swiftdeploy sets, since its last apply) becomes a
// forced apply, the drift it reverts named from the conflict: the fields
// and who changed them. Any other error stays.
func ForceAfterConflict(op Op, err error) (Op, bool) {
	if op.Kind != OpApply || op.Force || !kube.IsConflict(err) {
		return op, false
	}
	op.Force = true
	op.Why += "; revert drift: " + conflictText(err)
	return op, true
}

// conflictText names the fields of a conflict and their managers.
func conflictText(err error) string {
	var e *kube.Error
	if !errors.As(err, &e) || len(e.Causes) == 0 {
		return err.Error()
	}
	var parts []string
	for _, c := range e.Causes {
		parts = append(parts, c.Field+" "+c.Message)
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// Apply runs the plan's ops in order; the first error stops it, naming
// the op.
func Apply(ctx context.Context, c API, plan Plan, progress func(string)) error {
	for _, op := range plan.Ops {
		op, err := RunOp(ctx, c, op)
		if err != nil {
			return err
		}
		if progress != nil {
			progress(op.String())
		}
	}
	return nil
}

// RunOp runs one op and returns it as it ran: an apply that conflicted
// and was forced (ForceAfterConflict) says so. An error names the op.
func RunOp(ctx context.Context, c API, op Op) (Op, error) {
	var err error
	switch op.Kind {
	case OpApply:
		_, err = c.Apply(ctx, op.Ref, op.Body, kube.ApplyOptions{Force: op.Force})
		if forced, ok := ForceAfterConflict(op, err); ok {
			op = forced
			_, err = c.Apply(ctx, op.Ref, op.Body, kube.ApplyOptions{Force: true})
		}
	case OpDelete:
		err = c.Delete(ctx, op.Ref)
	default:
		err = fmt.Errorf("unknown op %q", op.Kind)
	}
	if err != nil {
		return op, fmt.Errorf("%s: %w", op, err)
	}
	return op, nil
}

// Converged reports whether obs is desired, rolled out: the plan is
// empty, nothing waits, and every desired Deployment has rolled out.
func Converged(desired Desired, obs Observed, plan Plan) (bool, string) {
	desired = ForObserved(desired, obs)
	if !plan.Empty() {
		return false, plan.Ops[0].String()
	}
	if len(plan.Waiting) > 0 {
		return false, plan.Waiting[0]
	}
	for _, obj := range desired.Objects {
		switch d := obj.(type) {
		case *appsv1.Deployment:
			live, ok := obs.Deployments[d.Name]
			if !ok {
				return false, "Deployment " + d.Name + " missing"
			}
			if done, why := RolledOut(live); !done {
				return false, "Deployment " + d.Name + ": " + why
			}
		case *appsv1.StatefulSet:
			live, ok := obs.StatefulSets[d.Name]
			if !ok {
				return false, "StatefulSet " + d.Name + " missing"
			}
			if done, why := StatefulSetRolledOut(live); !done {
				return false, "StatefulSet " + d.Name + ": " + why
			}
		}
	}
	return true, ""
}
