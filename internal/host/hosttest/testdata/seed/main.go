// A program written to the seed's WatcherAPI contract, with net/http only:
// it serves /watcher/status and /watcher/message but has no /watcher/ready
// (the seed's contract has none). It logs every request it receives, with
// the credentials it was given, so a test can tell which requests reached
// it and that none carried a token.
package main

import (
	"context"
	"encoding/json"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	addr := os.Getenv("HERSH_API_ADDR")
	if addr == "" {
		addr = ":8080"
	}
	started := time.Now()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /watcher/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"state": "Ready", "isRunning": true,
			"uptime": time.Since(started).String(), "lastUpdate": time.Now().UTC(),
		})
	})
	mux.HandleFunc("POST /watcher/message", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"status": "message sent"})
	})
	logged := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.Printf("seen %s %s authorization=%q cookie=%q", r.Method, r.URL.RequestURI(),
			r.Header.Get("Authorization"), r.Header.Get("Cookie"))
		mux.ServeHTTP(w, r)
	})
	srv := &http.Server{Addr: addr, Handler: logged, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	log.Printf("seed-style program listening on %s", addr)
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}

// On hosttest's fake engine, hosttest.Seed runs in place of this program.
//
//hosttest:program seed
