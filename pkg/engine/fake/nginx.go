package fake

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// defaultConf is nginx's compiled-in configuration path.
const defaultConf = "/etc/nginx/nginx.conf"

// Validator decides whether nginx accepts a configuration; path is the
// file's path inside the container. The error's text becomes nginx's
// "[emerg]" message. It runs with the fake's lock held: it must not call
// the fake.
type Validator func(path string, conf []byte) error

// DefaultValidator rejects a configuration containing the word "invalid",
// the way nginx rejects an unknown directive.
func DefaultValidator(path string, conf []byte) error {
	i := bytes.Index(conf, []byte("invalid"))
	if i < 0 {
		return nil
	}
	line := 1 + bytes.Count(conf[:i], []byte("\n"))
	return fmt.Errorf("unknown directive \"invalid\" in %s:%d", path, line)
}

// SetValidator replaces the validator; nil restores DefaultValidator.
func (e *Engine) SetValidator(v Validator) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.validator = v
}

// FailReload makes every reload fail even with a valid file, until
// FailReload(nil) or Clear: `nginx -s reload` exits 1 with err as nginx's
// message, and a master sent SIGHUP logs it and keeps the loaded config.
func (e *Engine) FailReload(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.failReload = err
}

// Loaded returns the configuration the running nginx container nameOrID
// serves: the file it loaded at start or at its last successful reload. It
// is nil for a container that is not a running nginx.
func (e *Engine) Loaded(nameOrID string) []byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.resolve(nameOrID)
	if c == nil || c.state != StateRunning {
		return nil
	}
	return slices.Clone(c.loaded)
}

// nginxArgs is an nginx command line.
type nginxArgs struct {
	test, quiet, version bool
	conf                 string // -c, defaultConf if absent
	signal               string // -s
	bad                  string // an option nginx would refuse
}

// parseNginx parses cmd if it runs nginx.
func parseNginx(cmd []string) (nginxArgs, bool) {
	a := nginxArgs{conf: defaultConf}
	if len(cmd) == 0 || filepath.Base(cmd[0]) != "nginx" {
		return a, false
	}
	for i := 1; i < len(cmd); i++ {
		arg := func() string {
			if i+1 < len(cmd) {
				i++
				return cmd[i]
			}
			a.bad = fmt.Sprintf("option \"%s\" requires an argument", cmd[i])
			return ""
		}
		switch cmd[i] {
		case "-t", "-T":
			a.test = true
		case "-q":
			a.quiet = true
		case "-v", "-V":
			a.version = true
		case "-c":
			a.conf = arg()
		case "-s":
			a.signal = arg()
		case "-g", "-p", "-e":
			arg()
		default:
			a.bad = fmt.Sprintf("invalid option: \"%s\"", strings.TrimPrefix(cmd[i], "-"))
		}
	}
	return a, true
}

// isNginxTest reports whether cmd is `nginx -t`, which changes nothing.
func isNginxTest(cmd []string) bool {
	a, ok := parseNginx(cmd)
	return ok && a.test && a.signal == "" && a.bad == ""
}

// readConf reads a file of container c through its bind mounts.
func readConf(c *container, path string) ([]byte, error) {
	var best string
	var source string
	for _, b := range c.spec.Binds {
		t := strings.TrimSuffix(b.Target, "/")
		if (path == t || strings.HasPrefix(path, t+"/")) && len(t) > len(best) {
			best, source = t, b.Source
		}
	}
	notFound := fmt.Errorf("open() \"%s\" failed (2: No such file or directory)", path)
	if best == "" {
		return nil, notFound // not modelled: the image's own files
	}
	b, err := os.ReadFile(filepath.Join(source, strings.TrimPrefix(path, best)))
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, notFound
	case errors.Is(err, os.ErrPermission):
		return nil, fmt.Errorf("open() \"%s\" failed (13: Permission denied)", path)
	case err != nil:
		return nil, fmt.Errorf("open() \"%s\" failed (%v)", path, err)
	}
	return b, nil
}

// checkLocked reads and validates path in c.
func (e *Engine) checkLocked(c *container, path string) ([]byte, error) {
	conf, err := readConf(c, path)
	if err != nil {
		return nil, err
	}
	v := e.validator
	if v == nil {
		v = DefaultValidator
	}
	if err := v(path, conf); err != nil {
		return nil, err
	}
	return conf, nil
}

func emerg(err error) string { return "nginx: [emerg] " + err.Error() + "\n" }

// testLocked is `nginx -t`.
func (e *Engine) testLocked(c *container, a nginxArgs) (int, string) {
	if _, err := e.checkLocked(c, a.conf); err != nil {
		return 1, emerg(err) + fmt.Sprintf("nginx: configuration file %s test failed\n", a.conf)
	}
	if a.quiet {
		return 0, ""
	}
	return 0, fmt.Sprintf("nginx: the configuration file %s syntax is ok\nnginx: configuration file %s test is successful\n", a.conf, a.conf)
}

// nginxMainLocked runs nginx as the main process of a started container:
// a test or a version query exits, a master loads its config or exits.
func (e *Engine) nginxMainLocked(c *container, a nginxArgs) {
	var code int
	var out string
	switch {
	case a.bad != "":
		code, out = 1, "nginx: "+a.bad+"\n"
	case a.version:
		code, out = 0, "nginx version: nginx/fake\n"
	case a.test:
		code, out = e.testLocked(c, a)
	case a.signal != "":
		code, out = 1, "nginx: [error] open() \"/run/nginx.pid\" failed (2: No such file or directory)\n"
	default:
		conf, err := e.checkLocked(c, a.conf)
		if err != nil {
			code, out = 1, emerg(err)
			break
		}
		c.confPath = a.conf
		e.loadLocked(c, conf)
		return // the master keeps running
	}
	c.logs.WriteString(out)
	e.exitLocked(c, code)
}

// nginxExecLocked runs cmd in running container c; after, if set, must run
// once the exec has ended (`nginx -s stop` stops the container).
func (e *Engine) nginxExecLocked(c *container, cmd []string) (code int, out string, after func()) {
	a, ok := parseNginx(cmd)
	if !ok || c.confPath == "" {
		return 127, fmt.Sprintf("fake engine: %q is not modelled in container %s\n", strings.Join(cmd, " "), c.name), nil
	}
	switch {
	case a.bad != "":
		return 1, "nginx: " + a.bad + "\n", nil
	case a.version:
		return 0, "nginx version: nginx/fake\n", nil
	case a.test:
		code, out := e.testLocked(c, a)
		return code, out, nil
	case a.signal == "":
		return 1, "nginx: [emerg] bind() to 0.0.0.0:80 failed (98: Address already in use)\n", nil
	}
	notice := e.now().Format("2006/01/02 15:04:05") + " [notice] 1#1: signal process started\n"
	switch a.signal {
	case "reload":
		if e.failReload != nil {
			return 1, emerg(e.failReload), nil
		}
		// The signal process parses its -c file first and refuses to
		// signal if it is broken.
		if _, err := e.checkLocked(c, a.conf); err != nil {
			return 1, emerg(err), nil
		}
		// The master re-reads the file it was started with; if that fails
		// it keeps serving the old config and only logs the failure.
		conf, err := e.checkLocked(c, c.confPath)
		if err != nil {
			c.logs.WriteString(emerg(err))
			return 0, notice, nil
		}
		e.loadLocked(c, conf)
		return 0, notice, nil
	case "reopen":
		return 0, notice, nil
	case "stop", "quit":
		return 0, notice, func() { e.exitLocked(c, 0) }
	default:
		return 1, fmt.Sprintf("nginx: invalid option: \"-s %s\"\n", a.signal), nil
	}
}
