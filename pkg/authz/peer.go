package authz

import (
	"context"
	"errors"
	"net"
	"os/user"
	"slices"
	"strconv"
)

// Peer is the process on the other end of a control socket connection, as
// the kernel recorded it when that process called connect(2).
type Peer struct {
	UID int // effective uid; -1 when the caller could not be identified
	GID int // effective (primary) gid
	PID int // 0 when the caller is in another pid namespace
	// User is the login name of UID, "" when UID has no passwd entry.
	User string
	// Groups are the supplementary groups the process held at connect
	// time. nil when they could not be read: the caller then gets only
	// what UID and GID give it.
	Groups []int
}

// unknownPeer stands for a caller whose credentials could not be read.
var unknownPeer = Peer{UID: -1, GID: -1}

func (p Peer) inGroup(gid int) bool {
	return gid >= 0 && (p.GID == gid || slices.Contains(p.Groups, gid))
}

// String names the caller for messages: `user alice (uid 1001)`, or
// `uid 1001` when the uid has no name.
func (p Peer) String() string {
	switch {
	case p.UID < 0:
		return "an unidentified caller"
	case p.User != "":
		return "user " + p.User + " (uid " + strconv.Itoa(p.UID) + ")"
	}
	return "uid " + strconv.Itoa(p.UID)
}

// Name is the caller as the journal's user field records it: the login
// name, or "uid:1001" when the uid has no name ("" for an unidentified
// caller).
func (p Peer) Name() string {
	switch {
	case p.UID < 0:
		return ""
	case p.User != "":
		return p.User
	}
	return "uid:" + strconv.Itoa(p.UID)
}

// userName looks up the login name of uid, "" if it has none.
func userName(uid int) string {
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil {
		return ""
	}
	return u.Username
}

type peerKey struct{}

// peerInfo is what ConnContext found out about a connection.
type peerInfo struct {
	peer Peer
	err  error
}

// ConnContext is for http.Server.ConnContext: it reads the peer's
// credentials once, when the connection is accepted, and keeps them in the
// context of every request on that connection. Credentials belong to the
// process that connected, so they are read from the connection, never from
// anything the client sends.
func ConnContext(ctx context.Context, conn net.Conn) context.Context {
	p, err := PeerOf(conn)
	return context.WithValue(ctx, peerKey{}, peerInfo{peer: p, err: err})
}

// PeerFrom returns the peer ConnContext recorded for the request's
// connection; false when there is none or its credentials could not be
// read.
func PeerFrom(ctx context.Context) (Peer, bool) {
	pi, ok := ctx.Value(peerKey{}).(peerInfo)
	if !ok || pi.err != nil {
		return unknownPeer, false
	}
	return pi.peer, true
}

// peerErr says why PeerFrom has no peer.
func peerErr(ctx context.Context) error {
	pi, ok := ctx.Value(peerKey{}).(peerInfo)
	if !ok {
		return errors.New("the server does not record peer credentials (authz.ConnContext is not its ConnContext)")
	}
	return pi.err
}

// withPeer records p for the request context ctx, as ConnContext would.
func withPeer(ctx context.Context, p Peer) context.Context { return WithPeer(ctx, p) }

// WithPeer returns ctx carrying p as the caller, as ConnContext records it
// for a connection. It is for in-process callers and tests that drive the
// real handler stack without a socket (pkg/controller's route walk and fuzz
// target); nothing a client sends reaches it.
func WithPeer(ctx context.Context, p Peer) context.Context {
	return context.WithValue(ctx, peerKey{}, peerInfo{peer: p})
}
