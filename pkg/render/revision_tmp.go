package render

import (
	"crypto/sha256"
	"encoding/hex"
)

// NginxRevision identifies a rendered nginx configuration.
func NginxRevision(conf []byte) (string, error) {
	sum := sha256.Sum256(conf)
	return hex.EncodeToString(sum[:8]), nil
}
