package images_test

import (
	"bytes"
	"context"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/deploy/images"
)

func TestParseLdd(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		want    []string
		wantErr string
	}{
		{
			name: "debian nginx",
			out: "\tlinux-vdso.so.1 (0x00007ffc1d5f2000)\n" +
				"\tlibcrypt.so.1 => /lib/x86_64-linux-gnu/libcrypt.so.1 (0x00007f0561bf6000)\n" +
				"\tlibpcre2-8.so.0 => /lib/x86_64-linux-gnu/libpcre2-8.so.0 (0x00007f0561b5c000)\n" +
				"\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f056141e000)\n" +
				"\t/lib64/ld-linux-x86-64.so.2 (0x00007f0561d99000)\n",
			want: []string{
				"/lib/x86_64-linux-gnu/libcrypt.so.1",
				"/lib/x86_64-linux-gnu/libpcre2-8.so.0",
				"/lib/x86_64-linux-gnu/libc.so.6",
				"/lib64/ld-linux-x86-64.so.2",
			},
		},
		{
			name:    "missing library",
			out:     "\tlibssl.so.3 => not found\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n",
			wantErr: "libssl.so.3",
		},
		{
			name:    "static binary",
			out:     "\tnot a dynamic executable\n",
			wantErr: "no shared libraries",
		},
		{
			name:    "statically linked",
			out:     "\tstatically linked\n",
			wantErr: "no shared libraries",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := images.ParseLdd(tt.out)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseLdd error = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseLdd: %v", err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("ParseLdd = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestReadBuildStream(t *testing.T) {
	tests := []struct {
		name    string
		stream  string
		wantLog string
		wantErr string
	}{
		{
			name:    "success",
			stream:  `{"stream":"Step 1/2 : FROM scratch\n"}` + "\n" + `{"stream":"Successfully built 4bce3eab587e\n"}` + "\n",
			wantLog: "Step 1/2 : FROM scratch\nSuccessfully built 4bce3eab587e\n",
		},
		{
			name: "error inside the stream",
			stream: `{"stream":"Step 2/2 : COPY app /app\n"}` + "\n" +
				`{"errorDetail":{"message":"COPY failed: file not found in build context"},"error":"COPY failed: file not found in build context"}` + "\n",
			wantLog: "Step 2/2 : COPY app /app\n",
			wantErr: "COPY failed: file not found in build context",
		},
		{
			name:    "truncated",
			stream:  `{"stream":"Step 1/2 : FR`,
			wantErr: "read build output",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log bytes.Buffer
			err := images.ReadBuildStream(strings.NewReader(tt.stream), &log)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("ReadBuildStream: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("ReadBuildStream error = %v, want one containing %q", err, tt.wantErr)
			}
			if log.String() != tt.wantLog {
				t.Errorf("log = %q, want %q", log.String(), tt.wantLog)
			}
		})
	}
}

func TestEnsureAppRejectsBadInput(t *testing.T) {
	tests := []struct {
		name    string
		tag     string
		version string
		wantErr string
	}{
		{"empty tag", "", "1.0.0", `invalid image tag ""`},
		{"tag with space", "app latest", "1.0.0", `invalid image tag "app latest"`},
		{"empty version", "app:test", "", `invalid version ""`},
		{"version injecting ldflags", "app:test", "1.0 -X main.x=y", `invalid version "1.0 -X main.x=y"`},
		{"version starting with dash", "app:test", "-1", `invalid version "-1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Input is checked before the client is used, so none is needed.
			err := images.EnsureApp(context.Background(), nil, tt.tag, tt.version, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("EnsureApp(%q, %q) error = %v, want one containing %q", tt.tag, tt.version, err, tt.wantErr)
			}
		})
	}
}

func TestEnsureAppOutsideModule(t *testing.T) {
	t.Chdir(t.TempDir())
	err := images.EnsureApp(context.Background(), nil, "app:test", "1.0.0", io.Discard)
	if err == nil || !strings.Contains(err.Error(), "no go.mod") {
		t.Fatalf("EnsureApp outside the module: error = %v, want one saying there is no go.mod", err)
	}
}
