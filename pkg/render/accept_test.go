package render

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

const acceptBase = `
project: shop
services:
  image: app:1
  port: 3000
  replicas: 2
  env: {A: "1"}
  canary: {image: app:2, weight: 20}
nginx: {image: nginx:latest, port: 8080}
network: {name: shop-net}
`

// TestAccept runs real manifests through every stage: a manifest is
// accepted only if it parses, its stack derives and both files render.
func TestAccept(t *testing.T) {
	tests := []struct {
		name    string
		doc     string
		wantErr string // "" when accepted
	}{
		{"base", acceptBase, ""},
		{"tricky env", strings.Replace(acceptBase, `{A: "1"}`, "\n    A: 1.10\n    B: on\n    C: '$${HOME} \"q\" #'\n    D: |\n      two\n      lines\n    E: \"\\t\\u00e9\\U0001F600\"", 1), ""},
		{"largest stack", fmt.Sprintf("project: %s\nservices: {image: app:1, port: 3000, replicas: 50, canary: {image: app:2, weight: 50, replicas: 50}}\nnginx: {image: nginx, port: 8080, bind: '::1'}\nnetwork: {name: n}\n",
			strings.Repeat("p", manifest.MaxProjectLen)), ""},
		{"metrics path at the root", acceptBase + "metrics: {path: /}\n", ""},

		// Refused at the first stage, the error saying so.
		{"unknown field", strings.Replace(acceptBase, "image: app:1", "imagee: app:1", 1), "parse manifest: invalid manifest:\n  services.imagee: unknown field"},
		{"metrics path nginx would misread", acceptBase + "metrics: {path: '/metrics?x=1'}\n", "parse manifest: invalid manifest:\n  metrics.path:"},
		{"metrics path reopening a refused one", acceptBase + "metrics: {path: /Chaos}\n", `metrics.path: "/Chaos" is refused by the front door`},
		{"empty", "", "parse manifest: invalid manifest:\n  (file): manifest is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Accept([]byte(tt.doc), "proj")
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Accept: %v\n%s", err, tt.doc)
				}
				if m == nil || m.Project == "" {
					t.Fatalf("Accept returned manifest %+v", m)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Accept error = %v, want one containing %q", err, tt.wantErr)
			}
			if m != nil {
				t.Errorf("Accept returned a manifest with its error")
			}
			// The validation problems stay reachable for callers that list them.
			var ve *manifest.ValidationError
			if !errors.As(err, &ve) {
				t.Errorf("error %v does not wrap a *manifest.ValidationError", err)
			}
		})
	}
}

// TestAcceptStages proves each stage runs, in order, and that its failure
// is returned wrapped and named: no manifest reaching Accept today fails
// after parsing, so the later stages are made to fail here.
func TestAcceptStages(t *testing.T) {
	errStage := errors.New("stage failed")
	failRender := func(stack.Stack) ([]byte, error) { return nil, errStage }
	tests := []struct {
		name    string
		mutate  func(a *acceptor, ran *[]string)
		wantErr string
		wantRan []string
	}{
		{"all pass", func(*acceptor, *[]string) {}, "", []string{"derive", "nginx", "compose"}},
		{"stack derivation panics", func(a *acceptor, _ *[]string) {
			a.derive = func(*manifest.Manifest, stack.Options) stack.Stack { panic("boom") }
		}, "derive stack: boom", nil},
		{"nginx.conf fails", func(a *acceptor, _ *[]string) { a.nginx = failRender }, "render nginx.conf: stage failed", []string{"derive"}},
		{"docker-compose.yml fails", func(a *acceptor, _ *[]string) { a.compose = failRender }, "render docker-compose.yml: stage failed", []string{"derive", "nginx"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ran []string
			a := acceptor{
				derive: func(m *manifest.Manifest, o stack.Options) stack.Stack {
					ran = append(ran, "derive")
					return stack.FromManifest(m, o)
				},
				nginx: func(s stack.Stack) ([]byte, error) {
					ran = append(ran, "nginx")
					return Nginx(s)
				},
				compose: func(s stack.Stack) ([]byte, error) {
					ran = append(ran, "compose")
					return Compose(s)
				},
			}
			tt.mutate(&a, &ran)
			m, err := a.accept([]byte(acceptBase), "proj")
			if tt.wantErr == "" {
				if err != nil || m == nil {
					t.Fatalf("accept = %v, %v", m, err)
				}
			} else {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("accept error = %v, want %q", err, tt.wantErr)
				}
				if strings.HasPrefix(tt.wantErr, "render") && !errors.Is(err, errStage) {
					t.Errorf("error %v does not wrap the stage's error", err)
				}
				if m != nil {
					t.Error("accept returned a manifest with its error")
				}
			}
			if strings.Join(ran, ",") != strings.Join(tt.wantRan, ",") {
				t.Errorf("stages that ran = %v, want %v", ran, tt.wantRan)
			}
		})
	}
}
