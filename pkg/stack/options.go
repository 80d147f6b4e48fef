package stack

// Options are decisions the daemon recorded that refine the manifest.
type Options struct {
	// StableImage, when set, overrides services.image: a promoted canary
	// image that the manifest has not caught up with yet.
	StableImage string
	// ServiceImages, in the named form, override services.NAME.image of
	// services other than the primary (which takes StableImage): a
	// release of that service brought back (swiftctl rollback SERVICE
	// --to) that the manifest has not moved past yet.
	ServiceImages map[string]string
	// NoCanary suppresses the manifest's canary (after a rollback).
	NoCanary bool
	// CanaryWeight, when not 0, is the weight of the rollout step in
	// force (services.canary.steps). It only changes nginx's split, never
	// a container: weights are not in any container's hash.
	CanaryWeight int
	// Canaries are NoCanary and CanaryWeight for the canaries of named
	// services other than the primary (which takes the two fields
	// above), by service name; a service left out takes its manifest's.
	Canaries map[string]CanaryOptions
	// TLSCert is the id of the certificate nginx.tls serves, from the
	// daemon's certificate store ("" while there is none).
	TLSCert string
	// Traffic is the operator's hold on traffic in force.
	Traffic Traffic
}

// CanaryOptions refine one named service's canary as Options.NoCanary
// and Options.CanaryWeight refine the primary's.
type CanaryOptions struct {
	// Weight, when not 0, is the weight of the rollout step in force.
	Weight int
	// Off suppresses the service's canary (after a rollback).
	Off bool
}
