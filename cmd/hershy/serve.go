package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/hershyorg/hershy/internal/api"
)

// version is set at link time (-ldflags "-X main.version=...").
var version = "dev"

type serveOpts struct {
	dataDir, listen, runtime, logLevel string
	proxyPorts                         string // per-program WatcherAPI ports, e.g. 9000-9999 ("" off)
	goCache, goModCache                string // caches of program builds ("" under the data directory)
	maxFollows, maxAdminFollows        int    // open log streams per user, for the admin
}

func defaultDataDir() string {
	if d := os.Getenv("HERSHY_DATA"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".hershy"
	}
	return filepath.Join(home, ".hershy")
}

func (a *app) serveCmd() *cobra.Command {
	var o serveOpts
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the Hershy Host (HTTP API) until SIGINT or SIGTERM",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.runtime != "runsc" && o.runtime != "runc" {
				return usageError{fmt.Errorf("--runtime %q: want runsc or runc", o.runtime)}
			}
			if o.maxFollows < 1 || o.maxAdminFollows < 1 {
				return usageError{fmt.Errorf("--max-follows and --max-follows-admin must be at least 1")}
			}
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(o.logLevel)); err != nil {
				return usageError{fmt.Errorf("--log-level: %w", err)}
			}
			logger := slog.New(slog.NewTextHandler(a.errOut, &slog.HandlerOptions{Level: lvl}))
			return a.serve(cmd.Context(), o, logger)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dataDir, "data", defaultDataDir(), "data directory (env HERSHY_DATA)")
	f.StringVar(&o.listen, "listen", "127.0.0.1:18080", "listen address")
	f.StringVar(&o.runtime, "runtime", "runsc", "container runtime: runsc (gVisor) or runc")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.StringVar(&o.goCache, "go-cache", "", "GOCACHE of program builds, e.g. shared with your own go command's (default DATA/cache/go-build)")
	f.StringVar(&o.goModCache, "go-mod-cache", "", "GOMODCACHE of program builds (default DATA/cache/gomod)")
	f.IntVar(&o.maxFollows, "max-follows", api.DefaultMaxFollows, "log streams (logs -f, build-log follows) one user may have open at once; more get 429")
	f.IntVar(&o.maxAdminFollows, "max-follows-admin", api.DefaultMaxAdminFollows, "log streams the admin may have open at once")
	f.StringVar(&o.proxyPorts, "proxy-ports", "", "give each Ready program a 127.0.0.1 port from `RANGE` (e.g. 9000-9999) forwarding to its WatcherAPI (default off)")
	return cmd
}

// serveHTTP serves h on ln until ctx ends, then shuts down gracefully.
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler, logger *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute, // large source uploads; no WriteTimeout: logs stream
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close() // streams still open after the grace period
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
