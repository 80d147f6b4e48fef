package authz

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDocsListEveryRoute keeps docs/security.md in step with the table.
func TestDocsListEveryRoute(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "security.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, r := range routes {
		row := "| `" + r.Method + " " + r.Path + "` | " + r.Role.String() + " |"
		if !strings.Contains(doc, row) {
			t.Errorf("docs/security.md lacks the row %q", row)
		}
	}
}
