package images

// Unexported steps exposed to the images_test package, which cannot be an
// internal test because it uses internal/testenv (which imports images).
var (
	EnsureAppFrom   = ensureApp
	EnsureNginxAs   = ensureNginx
	ParseLdd        = parseLdd
	ReadBuildStream = readBuildStream
	BuildImage      = buildImage
)

var EnsureRedisAs = ensureRedis
