package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"github.com/hershyorg/hershy/internal/api"
	"github.com/hershyorg/hershy/internal/builder"
	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/driver/docker"
	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/ui"
)

// serve opens the Host on the data directory and serves the API until ctx
// ends; the Host is closed after the HTTP server has shut down.
func (a *app) serve(ctx context.Context, o serveOpts, logger *slog.Logger) error {
	dataDir, err := filepath.Abs(o.dataDir)
	if err != nil {
		return fmt.Errorf("serve: data directory: %w", err)
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("serve: listen %s: %w", o.listen, err)
	}
	defer ln.Close()
	engine, err := docker.New()
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	// Fail at once, and say why, when the engine is down or lacks the
	// runtime: otherwise every program would fail at its first start.
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = engine.Check(cctx, o.runtime)
	cancel()
	if err != nil {
		engine.Close()
		return fmt.Errorf("serve: %w", err)
	}
	if o.buildMemory < 256<<20 {
		return usageError{fmt.Errorf("--build-memory: at least 256MiB")}
	}
	if o.buildCPUs < 0 || o.maxBuilds < 1 || o.buildTimeout <= 0 {
		return usageError{fmt.Errorf("--build-cpus, --max-builds and --build-timeout must be positive")}
	}
	keep := o.buildKeep
	switch {
	case keep < 0:
		return usageError{fmt.Errorf("--build-keep must not be negative")}
	case keep == 0:
		keep = -1 // the builder's "off"
	}
	if o.maxLaunches < 1 || o.launchTimeout <= 0 {
		return usageError{fmt.Errorf("--max-launches and --launch-timeout must be positive")}
	}
	h, err := host.Open(ctx, host.Options{
		DataDir: dataDir, Runtime: o.runtime, Logger: logger, Quotas: o.quotas,
		Launches: o.maxLaunches, LaunchTimeout: o.launchTimeout,
		Build: builder.Options{
			SharedCacheDir: o.goSharedCache, GoProxy: o.goProxy,
			Limits:    driver.Limits{MemoryBytes: o.buildMemory, CPUs: o.buildCPUs},
			GoTimeout: o.buildTimeout, MaxConcurrent: o.maxBuilds, KeepSandbox: keep,
		},
		StateBytes: o.stateBytes, MaxStateBytes: o.maxStateBytes, UncappedState: o.uncappedState,
	}, engine)
	if err != nil {
		return fmt.Errorf("serve: opening host: %w", err)
	}
	defer func() {
		if err := h.Close(); err != nil {
			logger.Error("closing host", "err", err)
		}
	}()
	_, path, created, err := h.Tokens().EnsureAdmin(ctx, dataDir)
	if err != nil {
		return fmt.Errorf("serve: admin token: %w", err)
	}
	if created {
		fmt.Fprintf(a.errOut, "Created the admin token in %s (mode 0600)\n", path)
	} else {
		fmt.Fprintf(a.errOut, "Admin token: %s\n", path)
	}
	handler, err := api.New(h, api.Options{
		DataDir: dataDir, Version: version, Logger: logger, ProxyBase: "http://" + ln.Addr().String(),
		MaxFollows: o.maxFollows, MaxAdminFollows: o.maxAdminFollows, PortRange: o.proxyPorts,
		ProxyInFlight: o.proxyInFlight, ProxyHeaderTimeout: o.proxyHeaderTimeout,
	})
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer handler.Close() // before the Host closes (deferred earlier)
	dash, err := ui.New(handler, ui.Options{Logger: logger, Version: version})
	if err != nil {
		return fmt.Errorf("serve: dashboard: %w", err)
	}
	fmt.Fprintf(a.errOut, "Hershy Host %s listening on http://%s (data %s, runtime %s); dashboard at http://%s/ui/\n",
		version, ln.Addr(), dataDir, o.runtime, ln.Addr())
	return serveHTTP(ctx, ln, ui.Mount(handler, dash), logger)
}
