package kubernetes

import "github.com/swiftdeploy/swiftdeploy/pkg/stack"

// Labels and annotations on every object the Kubernetes renderer writes,
// in this one file as in pkg/stack. The project, role and track keys are
// the Docker target's own (io.swiftdeploy.* is a valid label key), so
// ownership reads the same on both targets. The config hash (64 hex
// characters) and the image reference ('/' and ':') are not valid label
// values, so on Kubernetes they are annotations.
const (
	LabelProject = stack.LabelProject
	LabelRole    = stack.LabelRole
	LabelTrack   = stack.LabelTrack
	// LabelService names the service of a named-form manifest.
	LabelService = stack.LabelService

	// LabelManagedBy and LabelName are the recommended app.kubernetes.io
	// labels, for tools that group objects by them.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	LabelName      = "app.kubernetes.io/name"
	ManagedBy      = "swiftdeploy"

	AnnotationConfigHash = stack.LabelConfigHash
	AnnotationImage      = stack.LabelImage

	// RoleFrontDoor marks the HTTPRoute, the Kubernetes target's nginx.
	RoleFrontDoor = "front-door"
	// RoleDaemon marks the RBAC objects of swiftdeployd itself.
	RoleDaemon = "daemon"
)

// objectLabels are the labels of every object of project in role (and
// track, for the per-track Deployments and Services).
func objectLabels(project, role, track string) map[string]string {
	l := map[string]string{
		LabelProject:   project,
		LabelRole:      role,
		LabelManagedBy: ManagedBy,
		LabelName:      project,
	}
	if track != "" {
		l[LabelTrack] = track
	}
	return l
}

// selectorLabels select one track's pods. They are a Deployment's
// spec.selector, which the API refuses to change after creation, so they
// hold only what never changes for a track: no hash, no image.
func selectorLabels(project, track string) map[string]string {
	return map[string]string{
		LabelProject: project,
		LabelRole:    stack.RoleApp,
		LabelTrack:   track,
	}
}

// podLabels are the labels of an app's pods, and the selector of its
// workload: selectorLabels, and in the named form the service's name, so
// that each service's workloads and Services select its pods alone.
func podLabels(project string, a stack.App) map[string]string {
	l := selectorLabels(project, a.Track)
	if a.Service != "" {
		l[LabelService] = a.Service
	}
	return l
}

// appLabels are the labels of a workload (or Service) of app a's track:
// objectLabels, and in the named form the service's name.
func appLabels(project string, a stack.App) map[string]string {
	l := objectLabels(project, stack.RoleApp, a.Track)
	if a.Service != "" {
		l[LabelService] = a.Service
	}
	return l
}
