package authz

import (
	"os"
	"slices"
	"strings"
	"testing"
)

func TestParseStatus(t *testing.T) {
	const good = "Name:\tcat\nUmask:\t0022\nState:\tR (running)\nUid:\t1001\t1002\t1003\t1004\nGid:\t2001\t2002\t2003\t2004\nFDSize:\t64\nGroups:\t27 100 4202 \nNStgid:\t1\n"
	st, err := parseStatus([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if st.euid != 1002 || st.egid != 2002 || !slices.Equal(st.groups, []int{27, 100, 4202}) {
		t.Errorf("parsed %+v", st)
	}
	st, err = parseStatus([]byte("Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t\n"))
	if err != nil || len(st.groups) != 0 || st.groups == nil {
		t.Errorf("no groups: %+v, %v", st, err)
	}
	for _, bad := range []string{
		"",
		"Uid:\t1\t1\t1\t1\nGid:\t1\t1\t1\t1\n", // no Groups
		"Uid:\t1\t1\t1\nGid:\t1\t1\t1\t1\nGroups:\t\n",    // short Uid
		"Uid:\t1\tx\t1\t1\nGid:\t1\t1\t1\t1\nGroups:\t\n", // bad id
		"Uid:\t1\t1\t1\t1\nGid:\t1\t1\t1\t1\nGroups:\t1 -2\n",
		"Uid:\t1\t1\t1\t1\nGid:\t1\t1\t1\t1\nGroups:\t99999999999\n",
	} {
		if _, err := parseStatus([]byte(bad)); err == nil {
			t.Errorf("parseStatus(%q) accepted", bad)
		}
	}
}

func TestProcGroupsOfSelf(t *testing.T) {
	gs, err := procGroups("/proc", os.Getpid(), os.Geteuid(), os.Getegid())
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.Getgroups()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(gs, want) {
		t.Errorf("procGroups = %v, os.Getgroups = %v", gs, want)
	}
	// A process that no longer has the peer's ids is not the peer.
	if _, err := procGroups("/proc", os.Getpid(), os.Geteuid()+1, os.Getegid()); err == nil || !strings.Contains(err.Error(), "pid reused") {
		t.Errorf("uid mismatch: %v", err)
	}
	if _, err := procGroups("/proc", os.Getpid(), os.Geteuid(), os.Getegid()+1); err == nil {
		t.Error("gid mismatch accepted")
	}
	if _, err := procGroups(t.TempDir(), 1, 0, 0); err == nil {
		t.Error("missing status file accepted")
	}
}
