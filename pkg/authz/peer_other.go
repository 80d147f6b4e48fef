//go:build !linux

package authz

import (
	"errors"
	"net"
)

// PeerOf reads the credentials of the process on the other end of a Unix
// socket connection. Only Linux is supported: elsewhere every caller is
// unidentified, and so refused.
func PeerOf(conn net.Conn) (Peer, error) {
	return unknownPeer, errors.New("peer credentials: only supported on Linux")
}
