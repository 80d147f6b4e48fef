// Package fake is an in-memory Docker Engine for unit tests of the
// reconciler and the daemon. It implements reconciler.Engine plus the
// daemon's Ping and Watch, behaves like Docker where SwiftDeploy depends on
// it, and lets a test inject faults between any two calls.
//
// # What it models
//
//   - Containers: random (seeded) 64-hex IDs, unique names (a duplicate is a
//     Conflict, as errdefs.IsConflict sees Docker's 409), labels returned
//     through engine.Container exactly as engine.ListContainers derives them,
//     the states created, running and exited, Created from an injectable
//     clock (truncated to seconds, as Docker's list reports it), and an IP on
//     the container's network while it runs. IPs are 10.N.x.y strings, one
//     /16 per network, handed out in sequence and never reused; nothing dials
//     them. Remove takes an ID, a name or a unique ID prefix, and a missing
//     container is not an error. Run fails like Docker for a missing image
//     ("No such image"), a missing network, a missing bind source or an
//     invalid name, and, after the container was created, for a host port
//     another running container publishes; a container that fails to start
//     is removed, as engine.Run does.
//   - Networks: the pre-defined bridge, host and none; create (a duplicate
//     name is a Conflict), find by exact name with Owned meaning "carries the
//     project label", remove (PermissionDenied while a running container is
//     attached, like Docker's "has active endpoints"; a missing one is not
//     an error).
//   - Images: refs are normalised as Docker does (nginx means
//     docker.io/library/nginx:latest). AddImage makes one present; PullImage
//     succeeds only for refs marked SetPullable.
//   - Processes: a container whose Cmd starts with "nginx" runs the nginx
//     simulation below; any other container just runs until it is removed,
//     killed (Kill) or told to exit at start (ExitOnStart).
//   - nginx: the configuration is read from the real file system through the
//     container's bind mounts (engine.Spec.Binds), so the files the
//     reconciler writes to its ConfigDir are the files the fake nginx sees.
//     `nginx -t [-q] -c F` validates F with the Validator (by default: reject
//     a file containing "invalid"); the master process (`nginx -c F -g ...`)
//     loads F at start, or exits at once if F does not validate;
//     `nginx -s reload -c F` re-validates and swaps the loaded config, or
//     exits 1 and keeps the old one; Signal(HUP) makes the master re-read
//     the file it started with and load it if it validates (IgnoreHUP: the
//     main process ignores it). Every load starts a new generation of two
//     workers; Top lists the master and its workers, and the previous
//     generation exits at once unless HoldOldWorkers keeps it draining
//     ("nginx: worker process is shutting down") until ReleaseOldWorkers. Loaded reports what a running nginx
//     serves. Output imitates nginx's own messages.
//   - Health: every running container answers health probes (Probe, or an
//     http.Client using Transport) unless SetHealthy marked its name or image
//     unhealthy.
//   - Logs: Log writes lines to a running container's standard output;
//     FollowLogs streams them to every follower from the call on, ending
//     with io.EOF when the container stops or is removed, with ctx's error
//     when ctx ends, or with the error given to BreakLogs (a cut
//     connection). Followers counts the open streams.
//   - Events: create, start, kill, die, stop, destroy and exec_* container
//     events with the role label, on every Watch of the container's project.
//   - Faults: FailNext, FailAlways, Hang, Down/Up, FailReload, ExitOnStart,
//     IgnoreHUP, HoldOldWorkers, Kill, BreakLogs, and the BeforeCall hook,
//     which runs before every call (without the fake's lock held) so a test
//     can change the world, inject a fault aimed at that very call, or
//     cancel the caller's context between steps.
//   - Calls records every call, in order, with its target and result.
//
// # With the reconciler and the daemon
//
//	f := fake.New(fake.WithSeed(1))
//	f.AddImage(appImage, nginxImage)
//	r := &reconciler.Reconciler{
//		Engine:    f,
//		ConfigDir: t.TempDir(), // the nginx bind source: the fake reads it
//		Probe:     f.Probe,     // health checks by container IP
//		// what nginx serves, from the fake's Loaded (the status socket
//		// itself is not modelled):
//		NginxStatus: f.NginxStatus("demo-nginx"),
//		...
//	}
//
// Code that probes through an *http.Client can use
// &http.Client{Transport: f.Transport()} instead of Probe; code that dials
// a published host port needs WithHostPorts. *Engine also has the daemon's
// Ping, Watch, FollowLogs and Close.
//
// # What it does not model
//
// Restart policies (a killed container stays exited), image contents and
// the image's default command, DNS and network aliases, extra hosts, the
// host IP a port is published on (engine.Spec.HostIP: two containers on
// one port conflict whatever their IPs), nginx's status socket, resource
// limits, FollowLogs' since (a stream sees only what is written after it
// began), what nginx would log (a test writes the lines), pause/restart
// states, the time anything takes (stop grace, pull duration, nginx
// start-up: everything happens within the call), nginx's
// real config grammar (the Validator decides), and any command other than
// the nginx ones above (Exec answers 127). Events are delivered from an
// unbounded queue per Watch, subscribed before Watch returns, so no event
// after Watch returns is missed (the real stream subscribes asynchronously).
// Probes ignore the port and path of the URL. The engine's connection
// failure is ErrEngineDown, not the Docker client's unexported type.
//
// Hooks (BeforeCall, the Validator) and the container world are guarded by
// one mutex; the Validator runs with it held and must not call the fake.
package fake
