// Package policies carries SwiftDeploy's default Rego policies inside the
// binaries, so a fresh host needs no policy files and `swiftctl init` can
// write them out for the user to customise.
package policies

import "embed"

// FS holds the default policies and their Rego tests (*_test.rego). The
// tests ship too so that written-out policies keep their tests beside them.
//
//go:embed *.rego
var FS embed.FS
