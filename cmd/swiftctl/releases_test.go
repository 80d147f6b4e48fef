package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
)

func TestWriteReleases(t *testing.T) {
	yes, no := true, false
	at := time.Date(2026, 12, 7, 5, 39, 15, 0, time.UTC)
	tests := []struct {
		name string
		in   api.Releases
		want string
	}{
		{name: "none", in: api.Releases{Service: "shop"}, want: "No releases of shop yet.\n"},
		{
			name: "current marked, one image gone",
			in: api.Releases{Service: "shop", Keep: 5, Releases: []api.Release{
				{Rev: 3, Image: "shop:3", Digest: "sha256:ccc", At: at, User: "alice", Cause: "deploy", Local: &yes},
				{Rev: 2, Image: "shop:2", Digest: "sha256:bbb", At: at, User: "bob", Cause: "promote", Current: true, Local: &yes},
				{Rev: 1, Image: "shop:1", At: at, Cause: "deploy", Local: &no},
			}},
			want: "   REV  IMAGE   DIGEST      WHEN                  WHO    CAUSE    LOCAL\n" +
				"   3    shop:3  sha256:ccc  2026-12-07T05:39:15Z  alice  deploy   yes\n" +
				"*  2    shop:2  sha256:bbb  2026-12-07T05:39:15Z  bob    promote  yes\n" +
				"   1    shop:1  -           2026-12-07T05:39:15Z  -      deploy   MISSING\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := writeReleases(&b, tc.in); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Errorf("got\n%s\nwant\n%s", b.String(), tc.want)
			}
		})
	}
}

// Without SERVICE in the named form every service's releases are listed,
// one table each under its name.
func TestWriteServicesReleases(t *testing.T) {
	at := time.Date(2026, 12, 7, 5, 39, 15, 0, time.UTC)
	all := []api.Releases{
		{Service: "db"},
		{Service: "web", Keep: 5, Releases: []api.Release{{Rev: 1, Image: "shop:1", At: at, User: "alice", Cause: "deploy", Current: true}}},
	}
	var b bytes.Buffer
	if err := writeServicesReleases(&b, all); err != nil {
		t.Fatal(err)
	}
	want := "db:\nNo releases of db yet.\n\nweb:\n" +
		"   REV  IMAGE   DIGEST  WHEN                  WHO    CAUSE   LOCAL\n" +
		"*  1    shop:1  -       2026-12-07T05:39:15Z  alice  deploy  -\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}
