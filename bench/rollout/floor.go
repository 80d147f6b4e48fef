package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/swiftdeploy/swiftdeploy/deploy/images"
)

// The demo app's port and health path (its defaults, and the manifest's).
const (
	appPort    = 3000
	healthPath = "/healthz"
)

// floorPoll is how often the floor probes the new container's health path.
const floorPoll = 10 * time.Millisecond

// measureFloor times the bare engine: create and start count containers of
// image at once (API calls, no CLI) until each answers GET healthPath with
// 200 from the host over its bridge network, probed every floorPoll. It
// returns the time until the last one answered.
func measureFloor(ctx context.Context, cli *client.Client, name string, image string, count int, timeout time.Duration) (time.Duration, error) {
	network := name + "-net"
	if _, err := cli.NetworkCreate(ctx, network, client.NetworkCreateOptions{Driver: "bridge", Labels: map[string]string{labelRun: name}}); err != nil {
		return 0, fmt.Errorf("create network %s: %w", network, err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	probe := &http.Client{Timeout: 500 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}

	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, count)
	took := make([]time.Duration, count)
	for i := range count {
		wg.Go(func() {
			took[i], errs[i] = startAndProbe(ctx, cli, probe, fmt.Sprintf("%s-%d", name, i+1), network, image, start)
		})
	}
	wg.Wait()
	var last time.Duration
	for i := range count {
		if errs[i] != nil {
			return 0, errs[i]
		}
		last = max(last, took[i])
	}
	return last, nil
}

func startAndProbe(ctx context.Context, cli *client.Client, probe *http.Client, name, network, image string, start time.Time) (time.Duration, error) {
	created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: name,
		Config: &container.Config{
			Image:  image,
			Env:    []string{fmt.Sprintf("PORT=%d", appPort)},
			Labels: map[string]string{labelRun: name},
		},
		HostConfig: &container.HostConfig{NetworkMode: container.NetworkMode(network)},
	})
	if err != nil {
		return 0, fmt.Errorf("floor: create %s: %w", name, err)
	}
	if _, err := cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		return 0, fmt.Errorf("floor: start %s: %w", name, err)
	}
	inspected, err := cli.ContainerInspect(ctx, created.ID, client.ContainerInspectOptions{})
	if err != nil {
		return 0, fmt.Errorf("floor: inspect %s: %w", name, err)
	}
	ep := inspected.Container.NetworkSettings.Networks[network]
	if ep == nil || !ep.IPAddress.IsValid() {
		return 0, fmt.Errorf("floor: %s has no address on %s", name, network)
	}
	url := fmt.Sprintf("http://%s:%d%s", ep.IPAddress, appPort, healthPath)
	var lastErr error
	for {
		resp, err := probe.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(start), nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		lastErr = err
		if err := sleep(ctx, floorPoll); err != nil {
			return 0, fmt.Errorf("floor: %s never answered %s: %v (%w)", name, url, lastErr, err)
		}
	}
}

// floorImage is the image the floor starts: the new version.
const floorImage = images.AppImageV2
