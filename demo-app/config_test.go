package main

import (
	"strings"
	"testing"
)

func TestConfigFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    config
		wantErr string // substring; empty means success
	}{
		{name: "defaults", env: nil, want: config{port: 3000, mode: "stable"}},
		{name: "canary on a custom port", env: map[string]string{"PORT": "8081", "MODE": "canary"}, want: config{port: 8081, mode: "canary"}},
		{name: "explicit stable", env: map[string]string{"MODE": "stable"}, want: config{port: 3000, mode: "stable"}},
		{name: "highest port", env: map[string]string{"PORT": "65535"}, want: config{port: 65535, mode: "stable"}},
		{name: "port not a number", env: map[string]string{"PORT": "http"}, wantErr: `PORT "http"`},
		{name: "port zero", env: map[string]string{"PORT": "0"}, wantErr: `PORT "0"`},
		{name: "port too high", env: map[string]string{"PORT": "65536"}, wantErr: `PORT "65536"`},
		{name: "negative port", env: map[string]string{"PORT": "-1"}, wantErr: `PORT "-1"`},
		{name: "unknown mode", env: map[string]string{"MODE": "blue"}, wantErr: `MODE "blue"`},
		{name: "redis address", env: map[string]string{"REDIS_ADDR": "db:6379"}, want: config{port: 3000, mode: "stable", redisAddr: "db:6379"}},
		{name: "redis address without port", env: map[string]string{"REDIS_ADDR": "db"}, wantErr: `REDIS_ADDR "db"`},
		{name: "mode is case sensitive", env: map[string]string{"MODE": "Canary"}, wantErr: `MODE "Canary"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := configFromEnv(func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("configFromEnv() error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("configFromEnv() error = %v", err)
			}
			if got != tt.want {
				t.Errorf("configFromEnv() = %+v, want %+v", got, tt.want)
			}
		})
	}
}
