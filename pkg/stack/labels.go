package stack

// Labels on every object SwiftDeploy owns. Ownership is decided by
// LabelProject alone: anything without it is never touched.
const (
	LabelPrefix     = "io.swiftdeploy."
	LabelProject    = LabelPrefix + "project"
	LabelRole       = LabelPrefix + "role"        // RoleApp or RoleNginx
	LabelTrack      = LabelPrefix + "track"       // TrackStable or TrackCanary
	LabelReplica    = LabelPrefix + "replica"     // 1-based replica number
	LabelConfigHash = LabelPrefix + "config-hash" // spec digest, replicas left out
	LabelImage      = LabelPrefix + "image"       // image reference as written in the manifest
	// LabelService names the service of a named-form manifest (absent in
	// the seed form: its containers keep the labels they always had).
	LabelService = LabelPrefix + "service"
	// LabelMounts (nginx only) identifies the host directories bind-mounted
	// into the container (device and inode of each). A bind mount pins the
	// directory it was made from: once that directory is removed and
	// recreated, nginx can no longer see new configs or reach its status
	// socket, and only a new container mounts the new directory.
	LabelMounts = LabelPrefix + "mounts"
)

// Labels returns the labels for an application container.
func (a App) Labels(project string) map[string]string {
	l := map[string]string{
		LabelProject:    project,
		LabelRole:       RoleApp,
		LabelTrack:      a.Track,
		LabelReplica:    itoa(a.Replica),
		LabelConfigHash: a.Hash,
		LabelImage:      a.Image,
	}
	if a.Service != "" {
		l[LabelService] = a.Service
	}
	return l
}

// Labels returns the labels for the nginx container.
func (n Nginx) Labels(project string) map[string]string {
	return map[string]string{
		LabelProject:    project,
		LabelRole:       RoleNginx,
		LabelConfigHash: n.Hash,
		LabelImage:      n.Image,
	}
}

// NetworkLabels returns the labels for the project network.
func NetworkLabels(project string) map[string]string {
	return map[string]string{LabelProject: project}
}
