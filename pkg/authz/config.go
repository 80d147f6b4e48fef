package authz

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"

	"go.yaml.in/yaml/v3"
)

// MaxConfigBytes bounds the configuration file.
const MaxConfigBytes = 64 << 10

// lookupGID resolves a configured group: a group name, or a gid written as
// a decimal number (a group named like a number must be given by gid).
func lookupGID(name string) (int, error) {
	if name == "" {
		return -1, errors.New("empty group name")
	}
	if strings.Trim(name, "0123456789") == "" {
		n, err := strconv.ParseUint(name, 10, 31)
		if err != nil {
			return -1, fmt.Errorf("gid %s is out of range", name)
		}
		return int(n), nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return -1, fmt.Errorf("group %q: %w", name, err)
	}
	n, err := strconv.Atoi(g.Gid)
	if err != nil {
		return -1, fmt.Errorf("group %q has a non-numeric gid %q", name, g.Gid)
	}
	return n, nil
}

// Validate checks that every configured group name resolves. RoleOf
// ignores a group that does not, so a typo would silently grant nobody:
// call Validate at start-up and refuse to start on an error.
func (c Config) Validate() error {
	var errs []error
	for _, l := range []struct {
		flag  string
		names []string
	}{{"read", c.ReadGroups}, {"operate", c.OperateGroups}, {"admin", c.AdminGroups}} {
		for _, name := range l.names {
			if _, err := lookupGID(name); err != nil {
				errs = append(errs, fmt.Errorf("%s group: %w", l.flag, err))
			}
		}
	}
	return errors.Join(errs...)
}

// merge returns c with o's groups appended.
func (c Config) merge(o Config) Config {
	return Config{
		ReadGroups:    append(append([]string(nil), c.ReadGroups...), o.ReadGroups...),
		OperateGroups: append(append([]string(nil), c.OperateGroups...), o.OperateGroups...),
		AdminGroups:   append(append([]string(nil), c.AdminGroups...), o.AdminGroups...),
	}
}

// LoadFile reads a configuration file: YAML (JSON is YAML too) with the
// keys read_groups, operate_groups and admin_groups, each a list of group
// names or gids:
//
//	read_groups: [developers]
//	operate_groups: [deployers]
//	admin_groups: [ops]
//
// It is strict: an unknown key, a second document, an empty file or an
// empty group name is an error. The file grants roles, so it must not be
// writable by anyone but its owner, and its owner must be root or the
// daemon's uid. The groups are validated.
func LoadFile(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("authz config: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Config{}, fmt.Errorf("authz config: %w", err)
	}
	if err := checkOwner(path, st); err != nil {
		return Config{}, err
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxConfigBytes+1))
	if err != nil {
		return Config{}, fmt.Errorf("authz config %s: %w", path, err)
	}
	if len(b) > MaxConfigBytes {
		return Config{}, fmt.Errorf("authz config %s: larger than %d bytes", path, MaxConfigBytes)
	}
	c, err := parseConfig(b)
	if err != nil {
		return Config{}, fmt.Errorf("authz config %s: %w", path, err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("authz config %s: %w", path, err)
	}
	return c, nil
}

func checkOwner(path string, st os.FileInfo) error {
	if !st.Mode().IsRegular() {
		return fmt.Errorf("authz config %s: not a regular file", path)
	}
	if st.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("authz config %s: mode %04o lets others write it, and it grants roles: chmod go-w %s", path, st.Mode().Perm(), path)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		if uid := int(sys.Uid); uid != 0 && uid != selfUID() {
			return fmt.Errorf("authz config %s: owned by uid %d; it grants roles, so it must belong to root or to the daemon's uid %d", path, uid, selfUID())
		}
	}
	return nil
}

func parseConfig(b []byte) (Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return Config{}, errors.New("empty file: give at least one of read_groups, operate_groups, admin_groups (or no file at all for the defaults)")
		}
		return Config{}, err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return Config{}, errors.New("more than one YAML document")
	}
	for _, l := range [][]string{c.ReadGroups, c.OperateGroups, c.AdminGroups} {
		for _, name := range l {
			if strings.TrimSpace(name) == "" {
				return Config{}, errors.New("empty group name")
			}
		}
	}
	return c, nil
}

// groupList is a repeatable string flag.
type groupList struct{ names *[]string }

func (g groupList) String() string {
	if g.names == nil {
		return ""
	}
	return strings.Join(*g.names, ",")
}

func (g groupList) Set(s string) error {
	if strings.TrimSpace(s) == "" {
		return errors.New("empty group name")
	}
	*g.names = append(*g.names, s)
	return nil
}

// RegisterFlags adds the daemon's authorisation flags to fs:
//
//	--read-group G, --operate-group G, --admin-group G  (repeatable)
//	--authz-config FILE
//
// and returns a function to call after fs.Parse: it yields the file's
// groups (if --authz-config was given) plus the flags' groups, validated.
func RegisterFlags(fs *flag.FlagSet) func() (Config, error) {
	var flags Config
	var file string
	fs.Var(groupList{&flags.ReadGroups}, "read-group", "Unix group (name or gid) whose members may read: status, history, diff, validate, metrics (repeatable)")
	fs.Var(groupList{&flags.OperateGroups}, "operate-group", "Unix group whose members may also deploy, promote, roll back, abort, pause and resume (repeatable)")
	fs.Var(groupList{&flags.AdminGroups}, "admin-group", "Unix group whose members may also inject chaos and take the stack down (repeatable)")
	fs.StringVar(&file, "authz-config", "", "YAML file with read_groups, operate_groups, admin_groups (added to the --*-group flags)")
	return func() (Config, error) {
		var c Config
		if file != "" {
			var err error
			if c, err = LoadFile(file); err != nil {
				return Config{}, err
			}
		}
		c = c.merge(flags)
		if err := c.Validate(); err != nil {
			return Config{}, fmt.Errorf("authz: %w", err)
		}
		return c, nil
	}
}
