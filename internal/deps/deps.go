// Package deps pins the project's libraries in go.mod while the packages that
// use them are being written. Remove once every import below is used elsewhere.
package deps

import (
	_ "github.com/moby/moby/client"
	_ "github.com/fsnotify/fsnotify"
	_ "sigs.k8s.io/yaml"
	_ "github.com/prometheus/common/expfmt"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/open-policy-agent/opa/v1/rego"
	_ "github.com/open-policy-agent/opa/v1/tester"
	_ "go.uber.org/zap"
	_ "github.com/spf13/cobra"
	_ "github.com/compose-spec/compose-go/v2/loader"
	_ "github.com/moby/moby/api/types/container"
)
