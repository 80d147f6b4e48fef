package kubetarget

import "testing"

// The kubelet's waiting message is its runtime's pull error, as
// containerd, CRI-O and Docker (dockershim, cri-dockerd) print it.
func TestPullRefused(t *testing.T) {
	for _, c := range []struct {
		runtime, msg string
		refused      bool
	}{
		// Refused: the registry answered 401/403.
		{"containerd, wrong password (basic auth)", `rpc error: code = Unknown desc = failed to pull and unpack image "registry.invalid:5000/shop/app:2": failed to resolve reference "registry.invalid:5000/shop/app:2": unexpected status from HEAD request to https://registry.invalid:5000/v2/shop/app/manifests/2: 401 Unauthorized`, true},
		{"containerd, token server refuses", `rpc error: code = Unknown desc = failed to pull and unpack image "registry.invalid/shop/app:2": failed to resolve reference "registry.invalid/shop/app:2": failed to authorize: failed to fetch oauth token: unexpected status from GET request to https://auth.registry.invalid/token?scope=repository%3Ashop%2Fapp%3Apull&service=registry: 401 Unauthorized`, true},
		{"containerd, anonymous token refused", `failed to pull and unpack image "registry.invalid/shop/app:2": failed to resolve reference "registry.invalid/shop/app:2": failed to authorize: failed to fetch anonymous token: unexpected status: 401 Unauthorized`, true},
		{"containerd, 403", `rpc error: code = Unknown desc = failed to pull and unpack image "registry.invalid/shop/app:2": failed to copy: httpReadSeeker: failed open: unexpected status code https://registry.invalid/v2/shop/app/blobs/sha256:0123: 403 Forbidden`, true},
		{"containerd, private repository", `rpc error: code = Unknown desc = failed to pull and unpack image "registry.invalid/shop/app:2": failed to resolve reference "registry.invalid/shop/app:2": pull access denied, repository does not exist or may require authorization: server message: insufficient_scope: authorization failed`, true},
		{"CRI-O, no credentials", `initializing source docker://registry.invalid:5000/shop/app:2: reading manifest 2 in registry.invalid:5000/shop/app: unauthorized: authentication required`, true},
		{"CRI-O, wrong password", `initializing source docker://registry.invalid/shop/app:2: unable to retrieve auth token: invalid username/password: unauthorized: incorrect username or password`, true},
		{"CRI-O, denied", `initializing source docker://registry.invalid/shop/app:2: reading manifest 2 in registry.invalid/shop/app: denied: requested access to the resource is denied`, true},
		{"dockershim", `rpc error: code = Unknown desc = Error response from daemon: pull access denied for registry.invalid/shop/app, repository does not exist or may require 'docker login': denied: requested access to the resource is denied`, true},
		{"dockershim, no credentials", `rpc error: code = Unknown desc = Error response from daemon: Head "https://registry.invalid:5000/v2/shop/app/manifests/2": no basic auth credentials`, true},
		{"cri-dockerd, 401", `Error response from daemon: Head "https://registry.invalid:5000/v2/shop/app/manifests/2": unauthorized: authentication required`, true},

		// Not refused: the image is missing, the network or the node failed.
		{"containerd, not found", `rpc error: code = NotFound desc = failed to pull and unpack image "registry.invalid/shop/app:nope": failed to resolve reference "registry.invalid/shop/app:nope": registry.invalid/shop/app:nope: not found`, false},
		{"CRI-O, manifest unknown", `initializing source docker://registry.invalid/shop/app:nope: reading manifest nope in registry.invalid/shop/app: manifest unknown: manifest unknown`, false},
		{"containerd, connection refused", `rpc error: code = Unknown desc = failed to pull and unpack image "registry.invalid:5000/shop/app:2": failed to resolve reference "registry.invalid:5000/shop/app:2": failed to do request: Head "https://registry.invalid:5000/v2/shop/app/manifests/2": dial tcp 10.0.0.7:5000: connect: connection refused`, false},
		{"containerd, DNS", `failed to pull and unpack image "registry.invalid/shop/app:2": failed to resolve reference "registry.invalid/shop/app:2": failed to do request: Head "https://registry.invalid/v2/shop/app/manifests/2": dial tcp: lookup registry.invalid on 10.96.0.10:53: no such host`, false},
		{"kubelet, registry unavailable", `image pull failed for registry.invalid/shop/app:2 because the registry is unavailable: i/o timeout`, false},
		{"containerd, node disk permission", `rpc error: code = Unknown desc = failed to pull and unpack image "registry.invalid/shop/app:2": failed to extract layer sha256:0123: mount callback failed on /var/lib/containerd/tmpmounts/containerd-mount1: open /var/lib/containerd/x: permission denied`, false},
		{"kubelet backoff (1.31)", `Back-off pulling image "registry.invalid/shop/app:2"`, false},
	} {
		if got := PullRefused(c.msg); got != c.refused {
			t.Errorf("%s: PullRefused(%q) = %v, want %v", c.runtime, c.msg, got, c.refused)
		}
	}
}
