package fake

import (
	"context"
	"fmt"
	"maps"
	"sort"
	"strings"

	"github.com/containerd/errdefs"

	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

type network struct {
	id, name, driver string
	labels           map[string]string
	builtin          bool // bridge, host, none: cannot be removed
	octet            int  // the subnet is 10.octet.0.0/16; -1: no addresses
	next             int  // next host number in the subnet
}

// NetworkInfo is a network as the fake holds it.
type NetworkInfo struct {
	ID, Name, Driver string
	Labels           map[string]string
}

func (e *Engine) addNetworkLocked(name, driver string, labels map[string]string, builtin bool) *network {
	n := &network{id: e.newID(), name: name, driver: driver, labels: maps.Clone(labels), builtin: builtin, octet: -1, next: 2}
	if driver != "host" && driver != "null" {
		n.octet = e.netSeq % 256
		e.netSeq++
	}
	e.networks[n.id] = n
	return n
}

// allocIP hands out the next address of the subnet, skipping .0 and .255.
func (n *network) allocIP() string {
	if n.octet < 0 {
		return ""
	}
	for n.next&0xff == 0 || n.next&0xff == 0xff {
		n.next++
	}
	h := n.next
	n.next++
	return fmt.Sprintf("10.%d.%d.%d", n.octet, (h>>8)&0xff, h&0xff)
}

func (e *Engine) networkByName(name string) *network {
	for _, n := range e.networks {
		if n.name == name {
			return n
		}
	}
	return nil
}

// resolveNetwork finds a network by ID, name or unique ID prefix, as Docker
// does.
func (e *Engine) resolveNetwork(ref string) *network {
	if n := e.networks[ref]; n != nil {
		return n
	}
	if n := e.networkByName(ref); n != nil {
		return n
	}
	var found *network
	for id, n := range e.networks {
		if ref != "" && strings.HasPrefix(id, ref) {
			if found != nil {
				return nil
			}
			found = n
		}
	}
	return found
}

// FindNetwork returns the network with exactly this name, or nil; Owned
// means it carries the project's label.
func (e *Engine) FindNetwork(ctx context.Context, name, project string) (n *engine.Network, err error) {
	c := e.begin(OpFindNetwork, name, "")
	defer c.end(&err)
	if ferr := e.admit(ctx, c); ferr != nil {
		return nil, fmt.Errorf("list networks named %s: %w", name, ferr)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	found := e.networkByName(name)
	if found == nil {
		return nil, nil
	}
	return &engine.Network{ID: found.id, Name: found.name, Driver: found.driver, Owned: found.labels[stack.LabelProject] == project}, nil
}

// CreateNetwork creates a labelled network; the default driver is bridge.
func (e *Engine) CreateNetwork(ctx context.Context, name, driver string, labels map[string]string) (err error) {
	c := e.begin(OpCreateNetwork, name, driver)
	defer c.end(&err)
	if ferr := e.admit(ctx, c); ferr != nil {
		return fmt.Errorf("create network %s: %w", name, ferr)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, err := e.createNetworkLocked(name, driver, labels); err != nil {
		return fmt.Errorf("create network %s: %w", name, err)
	}
	return nil
}

func (e *Engine) createNetworkLocked(name, driver string, labels map[string]string) (*network, error) {
	if name == "" {
		return nil, daemonErr(errdefs.ErrInvalidArgument, "invalid name: name is empty")
	}
	if e.networkByName(name) != nil {
		return nil, daemonErr(errdefs.ErrConflict, "network with name %s already exists", name)
	}
	if driver == "" {
		driver = "bridge"
	}
	return e.addNetworkLocked(name, driver, labels, false), nil
}

// RemoveNetwork removes a network by ID or name; a missing one is not an
// error. A network with a running container attached is not removed.
func (e *Engine) RemoveNetwork(ctx context.Context, id string) (err error) {
	c := e.begin(OpRemoveNetwork, id, "")
	defer c.end(&err)
	if ferr := e.admit(ctx, c); ferr != nil {
		return fmt.Errorf("remove network %s: %w", id, ferr)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	n := e.resolveNetwork(id)
	if n == nil {
		return nil
	}
	if n.builtin {
		return fmt.Errorf("remove network %s: %w", id, daemonErr(errdefs.ErrPermissionDenied, "%s is a pre-defined network and cannot be removed", n.name))
	}
	for _, ct := range e.containers {
		if ct.state == StateRunning && ct.spec.Network == n.name {
			return fmt.Errorf("remove network %s: %w", id, daemonErr(errdefs.ErrPermissionDenied, "error while removing network: network %s id %s has active endpoints", n.name, n.id))
		}
	}
	delete(e.networks, n.id)
	return nil
}

// AddNetwork creates a network directly, without recording a call: a
// pre-existing network for a test's starting state (a foreign one has no
// project label).
func (e *Engine) AddNetwork(name, driver string, labels map[string]string) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	n, err := e.createNetworkLocked(name, driver, labels)
	if err != nil {
		return "", err
	}
	return n.id, nil
}

// Networks returns every network, sorted by name.
func (e *Engine) Networks() []NetworkInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []NetworkInfo
	for _, n := range e.networks {
		out = append(out, NetworkInfo{ID: n.id, Name: n.name, Driver: n.driver, Labels: maps.Clone(n.labels)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
