package fake

import (
	"context"
	"errors"
	"regexp"
	"strings"

	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
	"github.com/swiftdeploy/swiftdeploy/pkg/render"
)

var (
	setRE    = regexp.MustCompile(`set \$(\w+) "([^"]*)";`)
	returnRE = regexp.MustCompile(`return 200 "(revision [^"]*)";`)
	varRE    = regexp.MustCompile(`\$(\w+)`)
)

// NginxStatus returns a reader of what the fake nginx container name has
// loaded, answering as the real nginx's status socket would (a stand-in
// for reconciler.ReadNginxStatus): it evaluates the status location of the
// loaded configuration (its set directives, then the return body) the way
// nginx does. A configuration without a status server reports only its
// revision; a container that does not run fails like a socket nobody
// listens on.
func (e *Engine) NginxStatus(name string) func(context.Context) (*reconciler.Loaded, error) {
	return func(context.Context) (*reconciler.Loaded, error) {
		conf := e.Loaded(name)
		if conf == nil {
			return nil, errors.New("dial unix nginx.sock: connect: connection refused")
		}
		ret := returnRE.FindSubmatch(conf)
		if ret == nil {
			rev, err := render.NginxRevision(conf)
			if err != nil {
				return nil, err
			}
			return &reconciler.Loaded{Revision: rev}, nil
		}
		vars := map[string]string{}
		subst := func(s string) string {
			return varRE.ReplaceAllStringFunc(s, func(v string) string { return vars[v[1:]] })
		}
		for _, m := range setRE.FindAllSubmatch(conf, -1) {
			vars[string(m[1])] = subst(string(m[2]))
		}
		body := strings.ReplaceAll(subst(string(ret[1])), `\n`, "\n")
		return reconciler.ParseLoaded([]byte(body))
	}
}
