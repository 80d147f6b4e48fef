package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

type client struct {
	http  *http.Client
	token string
}

func apiClient(dir string) client {
	pool := x509.NewCertPool()
	ca, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	pool.AppendCertsFromPEM(ca)
	b, _ := os.ReadFile(filepath.Join(dir, "tokens.csv"))
	token, _, _ := strings.Cut(string(b), ",") // the admin's, first
	return client{
		http:  &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}},
		token: token,
	}
}

// ready checks a running cluster: the API server answers /readyz.
func ready(dir string, timeout time.Duration) error {
	b, err := os.ReadFile(filepath.Join(dir, "admin.kubeconfig"))
	if err != nil {
		return err
	}
	var cfg struct {
		Clusters []struct{ Cluster struct{ Server string } }
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil || len(cfg.Clusters) == 0 {
		return fmt.Errorf("read admin.kubeconfig: %v", err)
	}
	api := apiClient(dir)
	return waitFor(timeout, "kube-apiserver", dir, func() error { return get(api.http, cfg.Clusters[0].Cluster.Server+"/readyz", api.token) })
}

func get(c *http.Client, url, token string) error {
	_, err := do(c, http.MethodGet, url, token, "", nil)
	return err
}

func do(c *http.Client, method, url, token, contentType string, body []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return out, fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, bytes.TrimSpace(out))
	}
	return out, nil
}

func hasCondition(obj []byte, typ string) error {
	var o struct {
		Status struct {
			Conditions []struct{ Type, Status, Message string }
		}
	}
	if err := json.Unmarshal(obj, &o); err != nil {
		return err
	}
	for _, c := range o.Status.Conditions {
		if c.Type == typ {
			if c.Status == "True" {
				return nil
			}
			return fmt.Errorf("%s is %s: %s", typ, c.Status, c.Message)
		}
	}
	return fmt.Errorf("no %s condition yet", typ)
}
