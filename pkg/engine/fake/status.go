package fake

import (
	"context"
	"errors"
	"regexp"
	"strings"

	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
	"github.com/swiftdeploy/swiftdeploy/pkg/render"
)

// statusBody finds the body nginx's status server answers with in a
// rendered configuration.
var statusBody = regexp.MustCompile(`return 200 "(revision [^"]*)"`)

// NginxStatus returns a reader of what the fake nginx container name has
// loaded, answering as the real nginx's status socket would (a stand-in
// for reconciler.ReadNginxStatus): the status server's body of the loaded
// configuration, or just its revision for a configuration without one. A
// container that does not run fails like a socket nobody listens on.
func (e *Engine) NginxStatus(name string) func(context.Context) (*reconciler.Loaded, error) {
	return func(context.Context) (*reconciler.Loaded, error) {
		conf := e.Loaded(name)
		if conf == nil {
			return nil, errors.New("dial unix nginx.sock: connect: connection refused")
		}
		if m := statusBody.FindSubmatch(conf); m != nil {
			return reconciler.ParseLoaded([]byte(strings.ReplaceAll(string(m[1]), `\n`, "\n")))
		}
		rev, err := render.NginxRevision(conf)
		if err != nil {
			return nil, err
		}
		return &reconciler.Loaded{Revision: rev}, nil
	}
}
