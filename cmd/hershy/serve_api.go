package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hershyorg/hershy/internal/alerts"
	"github.com/hershyorg/hershy/internal/api"
	"github.com/hershyorg/hershy/internal/builder"
	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/driver/docker"
	"github.com/hershyorg/hershy/internal/driver/kubernetes"
	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/ui"
)

// serve opens the Host on the data directory and serves the API until ctx
// ends; the Host is closed after the HTTP server has shut down. The
// address answers from the start: while the container engine (or the
// programs' runtime) does not, the Host waits for it and says so there
// (api.Starting), and opens once it does.
func (a *app) serve(ctx context.Context, o serveOpts, logger *slog.Logger) error {
	dataDir, err := filepath.Abs(o.dataDir)
	if err != nil {
		return fmt.Errorf("serve: data directory: %w", err)
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
	if o.keepReleases < 1 {
		return usageError{fmt.Errorf("--keep-releases must be at least 1")}
	}
	alertOpts, err := o.alertOptions()
	if err != nil {
		return usageError{err}
	}
	if o.maxLaunches < 1 || o.launchTimeout <= 0 {
		return usageError{fmt.Errorf("--max-launches and --launch-timeout must be positive")}
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("serve: listen %s: %w", o.listen, err)
	}
	defer ln.Close()
	if ap, err := netip.ParseAddrPort(ln.Addr().String()); err == nil {
		alertOpts.HostPorts = append(alertOpts.HostPorts, alerts.PortRange{Lo: ap.Port(), Hi: ap.Port()})
	}
	engine, err := openEngine(o)
	if err != nil {
		return usageError{fmt.Errorf("serve: %w", err)}
	}

	// One HTTP server for the whole run; what it serves changes once the
	// Host is open.
	starting := api.NewStarting(o.runtime, time.Now())
	var current atomic.Pointer[http.Handler]
	setHandler := func(h http.Handler) { current.Store(&h) }
	setHandler(starting)
	srvCtx, stopServer := context.WithCancel(ctx)
	defer stopServer()
	served := make(chan error, 1)
	go func() {
		served <- serveHTTP(srvCtx, ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			(*current.Load()).ServeHTTP(w, r)
		}), logger)
	}()
	// fail stops the server before the deferred closes run.
	fail := func(err error) error {
		stopServer()
		<-served
		return err
	}

	// With JSON logs every line is a record: what serve tells people goes
	// to the log instead.
	people := a.errOut
	if o.logFormat == "json" {
		people = io.Discard
	}
	if err := waitForEngine(ctx, engine, o.runtime, starting, logger, people); err != nil {
		engine.Close()
		if ctx.Err() != nil {
			return fail(nil) // stopped while waiting
		}
		return fail(fmt.Errorf("serve: %w", err))
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
		KeepReleases: o.keepReleases, Alerts: alertOpts,
	}, engine)
	if err != nil {
		return fail(fmt.Errorf("serve: opening host: %w", err))
	}
	defer func() {
		if err := h.Close(); err != nil {
			logger.Error("closing host", "err", err)
		}
	}()
	_, path, created, err := h.Tokens().EnsureAdmin(ctx, dataDir)
	if err != nil {
		return fail(fmt.Errorf("serve: admin token: %w", err))
	}
	switch {
	case o.logFormat == "json":
		logger.Info("admin token", "path", path, "created", created)
	case created:
		fmt.Fprintf(a.errOut, "Created the admin token in %s (mode 0600)\n", path)
	default:
		fmt.Fprintf(a.errOut, "Admin token: %s\n", path)
	}
	// SIGHUP: the quotas are read again (the command line's flags, then
	// the config file), and the admin token file checked again (a lost or
	// revoked one is made anew). Other tokens are read from the database
	// at each request: a new or revoked one counts at once.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-srvCtx.Done():
				return
			case <-hup:
			}
			q, err := reloadQuotas(o.cliGiven, o.configFile)
			if err == nil {
				_, err = h.SetQuotas(q)
			}
			if err != nil {
				logger.Error("SIGHUP: the quotas stay as they were", "err", err)
				continue
			}
			if _, path, created, err := h.Tokens().EnsureAdmin(srvCtx, dataDir); err != nil {
				logger.Error("SIGHUP: admin token", "err", err)
			} else if created {
				logger.Info("SIGHUP: made a new admin token", "path", path)
			}
			logger.Info("SIGHUP: reloaded")
		}
	}()
	handler, err := api.New(h, api.Options{
		DataDir: dataDir, Version: version, Logger: logger, ProxyBase: "http://" + ln.Addr().String(),
		MaxFollows: o.maxFollows, MaxAdminFollows: o.maxAdminFollows, PortRange: o.proxyPorts,
		ProxyInFlight: o.proxyInFlight, ProxyHeaderTimeout: o.proxyHeaderTimeout,
	})
	if err != nil {
		return fail(fmt.Errorf("serve: %w", err))
	}
	defer handler.Close() // before the Host closes (deferred earlier)
	dash, err := ui.New(handler, ui.Options{Logger: logger, Version: version})
	if err != nil {
		return fail(fmt.Errorf("serve: dashboard: %w", err))
	}
	setHandler(ui.Mount(handler, dash))
	if o.logFormat == "json" {
		logger.Info("listening", "version", version, "addr", ln.Addr().String(), "data", dataDir, "runtime", o.runtime,
			"dashboard", "http://"+ln.Addr().String()+"/ui/")
	} else {
		fmt.Fprintf(a.errOut, "Hershy Host %s listening on http://%s (data %s, runtime %s); dashboard at http://%s/ui/\n",
			version, ln.Addr(), dataDir, o.runtime, ln.Addr())
	}
	return <-served
}

// waitForEngine returns once the engine answers and has the runtime, or
// when ctx ends (its error). Meanwhile it checks every couple of seconds,
// tells starting of each failed check and says what it waits for: once on
// out, and in the log at each change.
func waitForEngine(ctx context.Context, engine driver.Driver, runtime string, starting *api.Starting, logger *slog.Logger, out io.Writer) error {
	said := ""
	for {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := engine.Check(cctx, runtime)
		cancel()
		if err == nil {
			if said != "" {
				logger.Info("the container engine answers; opening the Host")
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if msg := err.Error(); msg != said {
			if said == "" {
				fmt.Fprintf(out, "Waiting for the container engine (%v); the Host opens once it answers, and /healthz says so meanwhile\n", err)
			}
			logger.Warn("waiting for the container engine", "err", err)
			said = msg
		}
		starting.Checked(time.Now(), errors.Is(err, driver.ErrRuntimeMissing)) // after the words: /healthz then shows a check that was said
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

// openEngine makes the driver programs run on: this machine's Docker
// engine, or a Kubernetes cluster that images built on this machine's
// Docker are pushed to.
func openEngine(o serveOpts) (driver.Driver, error) {
	local, err := docker.New()
	if err != nil {
		return nil, err
	}
	c := o.cluster
	switch c.engine {
	case "docker":
		return local, nil
	case "kubernetes":
	default:
		local.Close()
		return nil, fmt.Errorf("--engine %q: docker or kubernetes", c.engine)
	}
	if c.registry == "" {
		local.Close()
		return nil, errors.New("--engine kubernetes needs --registry: where the nodes pull images from")
	}
	for _, cidr := range c.denyCIDRs {
		if _, err := netip.ParsePrefix(cidr); err != nil {
			local.Close()
			return nil, fmt.Errorf("--deny-cidr %q: %w", cidr, err)
		}
	}
	class := c.runtimeClass
	if class == "" && o.runtime == driver.RuntimeRunsc {
		class = "gvisor"
	}
	kubeconfig := c.kubeconfig
	if kubeconfig == "" {
		kubeconfig = os.Getenv("KUBECONFIG")
	}
	k, err := kubernetes.New(kubernetes.Options{
		Kubeconfig: kubeconfig, Namespace: c.namespace, Registry: c.registry, Builder: local,
		RuntimeClasses: map[string]string{o.runtime: class}, StorageClass: c.storageClass, DirectKubelet: c.directKubelet,
		DenyCIDRs: c.denyCIDRs,
		// This very binary is the helper that copies /state volumes.
		StateHelper: "/proc/self/exe",
	})
	if err != nil {
		local.Close()
		return nil, err
	}
	return &clusterEngine{Driver: k, local: local}, nil
}

// clusterEngine closes the local engine with the cluster's driver.
type clusterEngine struct {
	*kubernetes.Driver
	local *docker.Driver
}

func (c *clusterEngine) Close() error {
	c.Driver.Close()
	return c.local.Close()
}

// alertOptions reads the webhook flags. The Host's own ports (the API's,
// added once it listens, and the proxy ports) are refused to webhooks.
func (o *serveOpts) alertOptions() (host.AlertOptions, error) {
	a := host.AlertOptions{MaxWebhooks: o.maxWebhooks, StateEvery: o.stateAlertEvery}
	if o.maxWebhooks < 1 || o.stateAlertEvery <= 0 {
		return a, fmt.Errorf("--max-webhooks and --state-alert-every must be positive")
	}
	for _, s := range o.webhookAllow {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			return a, fmt.Errorf("--webhook-allow %q: want an address range, e.g. 127.0.0.1/32: %v", s, err)
		}
		a.Allow = append(a.Allow, p.Masked())
	}
	if o.proxyPorts != "" {
		lo, hi, err := api.ParsePortRange(o.proxyPorts)
		if err != nil {
			return a, fmt.Errorf("--proxy-ports: %w", err)
		}
		a.HostPorts = append(a.HostPorts, alerts.PortRange{Lo: uint16(lo), Hi: uint16(hi)})
	}
	return a, nil
}
