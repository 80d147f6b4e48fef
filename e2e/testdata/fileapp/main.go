// Command fileapp is the e2e tests' window into a container: it reports
// its user, working directory and arguments, reads and writes files (a
// secret at /run/secrets, a named volume's data) and reads variables, so
// that a test sees what the container got without docker exec.
package main

import (
	"encoding/json"
	"net/http"
	"os"
	"syscall"
)

func main() {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	mux.HandleFunc("/whoami", func(w http.ResponseWriter, r *http.Request) {
		wd, _ := os.Getwd()
		json.NewEncoder(w).Encode(map[string]any{"uid": os.Getuid(), "gid": os.Getgid(), "cwd": wd, "args": os.Args})
	})
	mux.HandleFunc("/file", func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Query().Get("path")
		b, err := os.ReadFile(p)
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		fi, _ := os.Stat(p)
		st, _ := fi.Sys().(*syscall.Stat_t)
		json.NewEncoder(w).Encode(map[string]any{"content": string(b), "mode": fi.Mode().Perm(), "uid": st.Uid, "gid": st.Gid})
	})
	mux.HandleFunc("/write", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if err := os.WriteFile(q.Get("path"), []byte(q.Get("value")), 0o600); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Write([]byte("written"))
	})
	mux.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) {
		v, ok := os.LookupEnv(r.URL.Query().Get("name"))
		json.NewEncoder(w).Encode(map[string]any{"value": v, "set": ok})
	})
	port := os.Getenv("PORT")
	if port == "" {
		port = "3000"
	}
	if err := http.ListenAndServe(":"+port, mux); err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
}
