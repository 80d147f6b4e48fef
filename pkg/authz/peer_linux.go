package authz

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// PeerOf reads the credentials of the process on the other end of a Unix
// socket connection: uid, gid and pid from SO_PEERCRED, supplementary
// groups as described below, and the uid's login name.
//
// Which groups count: those the connecting process held, not those the
// group database lists for its user. The kernel captured the process's
// credentials at connect(2), and it checked those (including the
// supplementary groups) against the socket's 0660 mode; authorising on the
// same credentials keeps one notion of "who is calling". The group database
// (os/user's GroupIds, /etc/group) can disagree with the process in both
// directions: a user added to a group gets it only at the next login, and a
// process that dropped its groups (a sandbox, setgroups(0), a service
// started with SupplementaryGroups=) must not regain them through us.
//
// Where they come from: SO_PEERGROUPS (Linux 4.13+) returns the groups from
// the very credentials SO_PEERCRED reports, taken at connect time, so there
// is no race. Only on an older kernel do we read the "Groups:" line of
// /proc/<pid>/status, and only after checking that the process there still
// has the peer's effective uid and gid (the pid may have been reused). If
// neither works, Groups is nil and the caller gets only what its uid and
// primary gid give: failing closed.
//
// PeerOf fails only when conn is not a Unix socket or SO_PEERCRED fails.
func PeerOf(conn net.Conn) (Peer, error) {
	if conn == nil {
		return unknownPeer, errors.New("peer credentials: no connection")
	}
	if la := conn.LocalAddr(); la == nil || (la.Network() != "unix" && la.Network() != "unixpacket") {
		return unknownPeer, fmt.Errorf("peer credentials: a %s connection has none (only Unix sockets do)", network(la))
	}
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return unknownPeer, fmt.Errorf("peer credentials: %T gives no access to its socket", conn)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return unknownPeer, fmt.Errorf("peer credentials: %w", err)
	}
	var (
		cred      *unix.Ucred
		credErr   error
		groups    []int
		groupsErr error
	)
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if credErr == nil {
			groups, groupsErr = peerGroups(int(fd))
		}
	}); err != nil {
		return unknownPeer, fmt.Errorf("peer credentials: %w", err)
	}
	if credErr != nil {
		return unknownPeer, fmt.Errorf("peer credentials: SO_PEERCRED: %w", credErr)
	}
	p := Peer{UID: int(cred.Uid), GID: int(cred.Gid), PID: int(cred.Pid)}
	if errors.Is(groupsErr, unix.ENOPROTOOPT) && p.PID > 0 {
		groups, groupsErr = procGroups("/proc", p.PID, p.UID, p.GID)
	}
	if groupsErr == nil {
		p.Groups = groups
	}
	p.User = userName(p.UID)
	return p, nil
}

// peerGroups returns the supplementary groups of the socket's peer via
// SO_PEERGROUPS. x/sys/unix has no wrapper for it (GetsockoptString stops
// at the first zero byte), hence the raw call.
func peerGroups(fd int) ([]int, error) {
	buf := make([]uint32, 32)
	for range 3 { // a second try with the size the kernel asked for suffices
		size := uint32(len(buf) * 4)
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size)), 0)
		switch {
		case errno == unix.ERANGE:
			buf = make([]uint32, size/4+1)
			continue
		case errno != 0:
			return nil, errno
		}
		groups := make([]int, 0, size/4)
		for _, g := range buf[:size/4] {
			groups = append(groups, int(g))
		}
		return groups, nil
	}
	return nil, errors.New("SO_PEERGROUPS: group list keeps growing")
}

// procGroups reads the supplementary groups of process pid from
// <proc>/<pid>/status, provided its effective uid and gid are still uid and
// gid.
func procGroups(proc string, pid, uid, gid int) ([]int, error) {
	b, err := os.ReadFile(proc + "/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return nil, err
	}
	st, err := parseStatus(b)
	if err != nil {
		return nil, fmt.Errorf("%s/%d/status: %w", proc, pid, err)
	}
	if st.euid != uid || st.egid != gid {
		return nil, fmt.Errorf("%s/%d/status: process has uid %d gid %d, not the peer's %d and %d (pid reused?)", proc, pid, st.euid, st.egid, uid, gid)
	}
	return st.groups, nil
}

type procStatus struct {
	euid, egid int
	groups     []int
}

// parseStatus reads the Uid:, Gid: and Groups: lines of a
// /proc/<pid>/status file; all three must be there.
func parseStatus(b []byte) (procStatus, error) {
	var st procStatus
	var haveUID, haveGID, haveGroups bool
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(val)
		switch key {
		case "Uid", "Gid":
			// real, effective, saved set, filesystem
			if len(fields) != 4 {
				return st, fmt.Errorf("%s: want 4 ids, got %q", key, val)
			}
			id, err := parseID(fields[1])
			if err != nil {
				return st, fmt.Errorf("%s: %w", key, err)
			}
			if key == "Uid" {
				st.euid, haveUID = id, true
			} else {
				st.egid, haveGID = id, true
			}
		case "Groups":
			st.groups = make([]int, 0, len(fields))
			for _, f := range fields {
				id, err := parseID(f)
				if err != nil {
					return st, fmt.Errorf("Groups: %w", err)
				}
				st.groups = append(st.groups, id)
			}
			haveGroups = true
		}
	}
	if err := sc.Err(); err != nil {
		return st, err
	}
	if !haveUID || !haveGID || !haveGroups {
		return st, errors.New("no Uid:, Gid: or Groups: line")
	}
	return st, nil
}

func parseID(s string) (int, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is not an id", s)
	}
	return int(n), nil
}

func network(a net.Addr) string {
	if a == nil {
		return "non-socket"
	}
	return a.Network()
}
