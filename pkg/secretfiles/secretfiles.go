// Package secretfiles reads what services.env_file and services.secrets
// name, for the daemon to give a container when it starts it, and digests
// their content so that a change of a file is a change of the service
// without the content appearing anywhere: the digest is an HMAC under a
// key private to the project's state directory, so it cannot be used to
// guess a short password offline either.
//
// Errors name the manifest field and the file, never a byte of content:
// they reach the journal and the logs.
package secretfiles

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"unicode/utf8"

	"github.com/compose-spec/compose-go/v2/dotenv"

	"github.com/swiftdeploy/swiftdeploy/pkg/atomicfile"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
)

// MaxFileSize bounds one env file or secret: Docker's and Kubernetes'
// secrets are at most 500 KiB and 1 MiB.
const MaxFileSize = 512 << 10

// KeyFile is the digest key's name in the state directory (0600).
const KeyFile = "secrets.key"

// Key returns the project's digest key from stateDir, making it on first
// use. The key never changes afterwards: a new key would change every
// digest, and so replace every container that has a secret.
func Key(stateDir string) ([]byte, error) {
	p := filepath.Join(stateDir, KeyFile)
	switch b, err := os.ReadFile(p); {
	case err == nil && len(b) == 64:
		k, err := hex.DecodeString(string(b))
		if err == nil {
			return k, nil
		}
		return nil, fmt.Errorf("secret digest key %s: %w", p, err)
	case err == nil:
		return nil, fmt.Errorf("secret digest key %s: want 64 hex digits, found %d bytes", p, len(b))
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("secret digest key %s: %w", p, err)
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("secret digest key: %w", err)
	}
	if err := atomicfile.Write(p, []byte(hex.EncodeToString(k)), 0o600); err != nil {
		return nil, fmt.Errorf("secret digest key %s: %w", p, err)
	}
	return k, nil
}

// Path resolves a path of the manifest: absolute as written, or relative
// to the manifest's directory dir.
func Path(dir, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(dir, p)
}

// Read returns one file's content, at most MaxFileSize bytes. field names
// the manifest field for the error.
func Read(field, dir, p string) ([]byte, error) {
	f, err := os.Open(Path(dir, p))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: read %s: %w", field, p, err)
	}
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("%s: %s is larger than %d bytes", field, p, MaxFileSize)
	}
	return b, nil
}

// EnvFiles reads a service's env files in order (a later file's value
// wins) as compose does, without expanding ${VAR} from the daemon's own
// environment. field is the service's path ("services").
func EnvFiles(field, dir string, files []string) (map[string]string, error) {
	out := map[string]string{}
	for i, p := range files {
		at := field + ".env_file[" + strconv.Itoa(i) + "]"
		b, err := Read(at, dir, p)
		if err != nil {
			return nil, err
		}
		vars, err := dotenv.UnmarshalBytesWithLookup(b, func(string) (string, bool) { return "", false })
		if err != nil {
			// The parser's message may quote the line: not shown.
			return nil, fmt.Errorf("%s: %s is not KEY=VALUE lines (the parser's message is not shown: the file may hold secrets)", at, p)
		}
		for k, v := range vars {
			switch {
			case !validEnvName(k):
				return nil, fmt.Errorf("%s: %s sets an invalid variable name %q", at, p, k)
			case k == "PORT" || k == "MODE":
				return nil, fmt.Errorf("%s: %s sets %s, which SwiftDeploy sets", at, p, k)
			case bytes.IndexByte([]byte(v), 0) >= 0 || !utf8.ValidString(v):
				return nil, fmt.Errorf("%s: %s: the value of %s holds NUL or invalid UTF-8 (not shown)", at, p, k)
			}
			out[k] = v
		}
	}
	return out, nil
}

func validEnvName(k string) bool {
	if k == "" {
		return false
	}
	for i, r := range k {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// Digest is the keyed digest of everything s's env files and secrets
// hold, "" when it has none. field is the service's path ("services").
func Digest(field, dir string, key []byte, s *manifest.Services) (string, error) {
	if len(s.EnvFile) == 0 && len(s.Secrets) == 0 {
		return "", nil
	}
	mac := hmac.New(sha256.New, key)
	write := func(label string, b []byte) {
		// Length-prefixed, so that no two sets of files digest alike.
		fmt.Fprintf(mac, "%s %d\n", label, len(b))
		mac.Write(b)
	}
	for i, p := range s.EnvFile {
		b, err := Read(field+".env_file["+strconv.Itoa(i)+"]", dir, p)
		if err != nil {
			return "", err
		}
		write("env_file", b)
	}
	for _, sec := range s.Secrets {
		b, err := Read(field+".secrets."+sec.Name, dir, sec.File)
		if err != nil {
			return "", err
		}
		write("secret "+sec.Name, b)
	}
	return hex.EncodeToString(mac.Sum(nil)), nil
}

// Values lists what s's env files and secret files hold that may be
// secret, for the journal's scrubber (the last line of the redaction rule:
// nothing quotes them by design): every env file's values, and every
// secret file's content, whole and line by line (a message quoting a line
// of a multi-line secret is caught too). A file that cannot be read or
// parsed is skipped: the apply that reads it reports that, naming only
// the field and the file.
func Values(dir string, s *manifest.Services) []string {
	var out []string
	for _, p := range s.EnvFile {
		b, err := Read("env_file", dir, p)
		if err != nil {
			continue
		}
		vars, err := dotenv.UnmarshalBytesWithLookup(b, func(string) (string, bool) { return "", false })
		if err != nil {
			out = append(out, lines(b)...) // unparsable: every line
			continue
		}
		for _, v := range vars {
			out = append(out, v)
		}
	}
	for _, sec := range s.Secrets {
		b, err := Read("secrets", dir, sec.File)
		if err != nil {
			continue
		}
		out = append(out, string(b), string(bytes.TrimSpace(b)))
		out = append(out, lines(b)...)
	}
	return out
}

// lines are b's non-empty lines, trimmed.
func lines(b []byte) []string {
	var out []string
	for _, l := range bytes.Split(b, []byte("\n")) {
		if l = bytes.TrimSpace(l); len(l) > 0 {
			out = append(out, string(l))
		}
	}
	return out
}
