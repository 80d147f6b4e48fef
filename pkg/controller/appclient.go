package controller

import "github.com/swiftdeploy/swiftdeploy/pkg/appclient"

// chaosClient posts chaos requests to app containers. It follows no
// redirect (the 3xx is the container's answer): a compromised app must
// not bounce the daemon, which runs as root, to loopback or cloud
// metadata. Each request is bounded by its context.
var chaosClient = appclient.New(0)
