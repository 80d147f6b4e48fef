package audit

import (
	"fmt"
	"path/filepath"
	"strings"
)

// intact reports whether the chain verified end to end.
func (r *report) intact() bool { return r.in.VerifyError == "" && r.in.Verify.OK }

func (r *report) integrityProblem() string {
	if r.in.VerifyError != "" {
		return "The journal could not be verified: " + md(r.in.VerifyError) + "."
	}
	if b := r.in.Verify.First; b != nil {
		return fmt.Sprintf("The hash chain breaks at `%s` line %d: %s.", filepath.Base(b.File), b.Line, md(b.Reason))
	}
	return "The hash chain did not verify."
}

func (r *report) integrity() {
	r.printf("## Journal integrity\n\n")
	v := r.in.Verify
	switch {
	case r.in.VerifyError != "":
		r.printf("**❌ NOT VERIFIED.** %s\n\n", r.integrityProblem())
		return
	case !v.OK:
		r.printf("**❌ CHAIN BROKEN.** %s\n\n", r.integrityProblem())
		r.printf("Every line from that point on may have been edited, removed or inserted; the lines before it are intact.\n\n")
	default:
		r.printf("**✅ Chain intact.** Every line is chained to the one before it by its SHA-256.\n\n")
	}
	names := make([]string, len(v.Files))
	for i, f := range v.Files {
		names[i] = "`" + filepath.Base(f) + "`"
	}
	r.printf("- Lines checked: %d\n", v.Lines)
	r.printf("- Files, in chain order: %s\n", strings.Join(names, ", "))
	if v.Head != "" {
		r.printf("- Head hash: `%s`\n", v.Head)
		r.printf("\nThe last line can only be protected by keeping the head hash somewhere else: compare it with a later report to detect a truncated tail.\n")
	}
}
