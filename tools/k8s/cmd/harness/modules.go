package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
)

// moduleDir returns path@version's directory in the module cache,
// downloading it through the Go toolchain (checksums verified) if missing.
func moduleDir(path, version string) (string, error) {
	tmp, err := os.MkdirTemp("", "harness-mod")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command("go", "mod", "download", "-json", path+"@"+version)
	cmd.Dir = tmp // outside any module: nothing is added to a go.mod
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	out, err := cmd.Output()
	var info struct{ Dir, Error string }
	_ = json.Unmarshal(out, &info)
	if err != nil || info.Dir == "" {
		return "", fmt.Errorf("go mod download %s@%s: %v %s", path, version, err, info.Error)
	}
	return info.Dir, nil
}
