package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hershyorg/hershy/internal/api"
	"github.com/hershyorg/hershy/internal/builder"
	"github.com/hershyorg/hershy/internal/host"
)

// version is set at link time (-ldflags "-X main.version=...").
var version = "dev"

type serveOpts struct {
	dataDir, listen, runtime, logLevel string
	logFormat, configFile              string
	proxyPorts                         string // per-program WatcherAPI ports, e.g. 9000-9999 ("" off)
	goSharedCache                      string // shared layer of the build cache ("" under the data directory)
	goProxy                            string // module proxies for programs' dependencies
	buildMemory                        int64  // memory of one build sandbox
	buildCPUs                          float64
	buildTimeout, buildKeep            time.Duration
	maxBuilds                          int
	maxLaunches                        int
	launchTimeout                      time.Duration
	quotas                             host.Quotas
	stateBytes, maxStateBytes          int64 // /state size caps (0: the Host's defaults)
	uncappedState                      bool  // /state without a size cap (development only)
	maxFollows, maxAdminFollows        int   // open log streams per user, for the admin
	proxyInFlight                      int   // proxied requests open per program
	proxyHeaderTimeout                 time.Duration
	keepReleases                       int               // releases kept per program
	webhookAllow                       []string          // CIDRs webhooks may reach besides public addresses
	maxWebhooks                        int               // webhooks per user
	stateAlertEvery                    time.Duration     // how often /state is read for state_nearly_full
	cluster                            clusterOpts       // --engine kubernetes
	cliGiven                           map[string]string // the command line's flags, for the reload on SIGHUP
}

// clusterOpts choose and reach a Kubernetes cluster to run programs on
// (--engine kubernetes); the Host still builds on the local Docker engine.
type clusterOpts struct {
	engine        string // "docker" or "kubernetes"
	kubeconfig    string
	namespace     string
	registry      string
	runtimeClass  string // the RuntimeClass of --runtime (default: gvisor for runsc, the node's own for runc)
	storageClass  string
	directKubelet bool
	denyCIDRs     []string
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
			o.cliGiven = givenFlags(cmd.Flags()) // before the file sets more
			if err := applyConfig(cmd.Flags(), o.configFile); err != nil {
				return usageError{err}
			}
			if o.runtime != "runsc" && o.runtime != "runc" {
				return usageError{fmt.Errorf("--runtime %q: want runsc or runc", o.runtime)}
			}
			if o.maxFollows < 1 || o.maxAdminFollows < 1 {
				return usageError{fmt.Errorf("--max-follows and --max-follows-admin must be at least 1")}
			}
			if o.proxyInFlight < 1 || o.proxyHeaderTimeout <= 0 {
				return usageError{fmt.Errorf("--proxy-in-flight must be at least 1 and --proxy-header-timeout positive")}
			}
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(o.logLevel)); err != nil {
				return usageError{fmt.Errorf("--log-level: %w", err)}
			}
			var handler slog.Handler
			switch o.logFormat {
			case "text":
				handler = slog.NewTextHandler(a.errOut, &slog.HandlerOptions{Level: lvl})
			case "json":
				handler = slog.NewJSONHandler(a.errOut, &slog.HandlerOptions{Level: lvl})
			default:
				return usageError{fmt.Errorf("--log-format %q: want text or json", o.logFormat)}
			}
			logger := slog.New(handler)
			return a.serve(cmd.Context(), o, logger)
		},
	}
	f := cmd.Flags()
	serveFlags(f, &o)
	f.StringVar(&o.configFile, "config", os.Getenv("HERSHY_SERVE_CONFIG"), "a JSON file of settings, each named as its flag (e.g. {\"max-programs\": 50}); flags given here override it; re-read on SIGHUP for the quotas (env HERSHY_SERVE_CONFIG)")
	return cmd
}

// serveFlags defines serve's settings on f (also for the reload on SIGHUP,
// which reads them again from the config file).
func serveFlags(f *pflag.FlagSet, o *serveOpts) {
	f.StringVar(&o.dataDir, "data", defaultDataDir(), "data directory (env HERSHY_DATA)")
	f.StringVar(&o.listen, "listen", "127.0.0.1:18080", "listen address")
	f.StringVar(&o.runtime, "runtime", "runsc", "container runtime: runsc (gVisor) or runc")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.StringVar(&o.logFormat, "log-format", "text", "log format: text, or json (one object a line, for a log collector)")
	f.StringVar(&o.goSharedCache, "go-shared-cache", "", "shared, read-only layer of programs' build cache: the standard library and the framework, compiled by the Host (default DATA/cache/go-shared)")
	f.StringVar(&o.goProxy, "go-proxy", "", "module proxies programs' dependencies are fetched through, GOPROXY syntax; \"direct\" is never used (default $GOPROXY, else https://proxy.golang.org)")
	o.buildMemory = 2 << 30
	f.Var((*byteSize)(&o.buildMemory), "build-memory", "memory limit of one build sandbox, its /tmp included (default 2GiB)")
	f.Float64Var(&o.buildCPUs, "build-cpus", 0, "CPU limit of one build sandbox, in cores (default: up to 2)")
	f.DurationVar(&o.buildTimeout, "build-timeout", 10*time.Minute, "time limit of one Go build")
	f.DurationVar(&o.buildKeep, "build-keep", builder.DefaultKeepSandbox, "how long a user's build sandbox stays up after their last Go build, for the next to run in; 0: a new sandbox for every build")
	f.IntVar(&o.maxBuilds, "max-builds", 1, "builds that run at once; the others wait in a queue")
	f.IntVar(&o.maxLaunches, "max-launches", host.DefaultLaunches, "program containers created and started on the engine at once; the other starts wait their turn")
	f.DurationVar(&o.launchTimeout, "launch-timeout", time.Minute, "time the engine has to create and start one program's container; past it the start fails and the restart policy retries")
	f.StringVar(&o.proxyPorts, "proxy-ports", "", "give each Ready program a 127.0.0.1 port from `RANGE` (e.g. 9000-9999) forwarding to its WatcherAPI, for the owner's or the admin's token (default off)")
	f.IntVar(&o.quotas.MaxPrograms, "max-programs", host.DefaultMaxPrograms, "programs one user may have, in any state")
	f.Var((*byteSize)(&o.quotas.MaxProgramMemory), "max-program-memory", "the most memory_bytes one program may ask for, e.g. 2GiB (default 4GiB, at most the machine's memory)")
	f.Var((*byteSize)(&o.quotas.MaxUserMemory), "max-user-memory", "memory one user's running programs may reserve in all, e.g. 16GiB (default 8GiB, at most the machine's memory)")
	f.Var((*byteSize)(&o.stateBytes), "state-bytes", "size cap of a program's /state when it sets none, e.g. 64MiB (default 256MiB)")
	f.Var((*byteSize)(&o.maxStateBytes), "max-state-bytes", "the most state_bytes a program may ask for (default 4GiB)")
	f.BoolVar(&o.uncappedState, "uncapped-state", false, "DEVELOPMENT ONLY: /state is a plain directory with NO size cap (no root or loop devices needed); a program can fill the disk")
	f.IntVar(&o.maxFollows, "max-follows", api.DefaultMaxFollows, "log streams (logs -f, build-log follows) one user may have open at once; more get 429")
	f.IntVar(&o.maxAdminFollows, "max-follows-admin", api.DefaultMaxAdminFollows, "log streams the admin may have open at once")
	f.IntVar(&o.proxyInFlight, "proxy-in-flight", api.DefaultProxyInFlight, "proxied WatcherAPI requests one program may have open at once; more get 429")
	f.DurationVar(&o.proxyHeaderTimeout, "proxy-header-timeout", api.DefaultProxyHeaderTimeout, "how long a program's WatcherAPI has to begin an answer before the caller gets 504")
	f.IntVar(&o.keepReleases, "keep-releases", host.DefaultKeepReleases, "releases each program keeps, with their sources and images, for hershy rollback")
	f.StringSliceVar(&o.webhookAllow, "webhook-allow", nil, "addresses (CIDR) webhooks may reach besides public ones, e.g. 127.0.0.1/32 for a receiver on this machine or 10.0.0.0/8 for one on your network (repeatable); the Host's own ports stay refused")
	f.IntVar(&o.maxWebhooks, "max-webhooks", host.DefaultMaxWebhooks, "webhooks one user may have")
	f.DurationVar(&o.stateAlertEvery, "state-alert-every", host.DefaultStateAlertEvery, "how often each program's /state is read for the state_nearly_full alert (90% of what it can hold)")
	c := &o.cluster
	f.StringVar(&c.engine, "engine", "docker", "where programs run: docker (this machine's engine) or kubernetes (a cluster; builds stay on this machine's Docker)")
	f.StringVar(&c.kubeconfig, "kubeconfig", "", "kubernetes: the kubeconfig file (default $KUBECONFIG; empty: the Host runs in the cluster)")
	f.StringVar(&c.namespace, "namespace", "hershy", "kubernetes: the namespace programs run in (it must exist)")
	f.StringVar(&c.registry, "registry", "", "kubernetes: where images are pushed and nodes pull from, e.g. 127.0.0.1:5000/hershy")
	f.StringVar(&c.runtimeClass, "runtime-class", "", "kubernetes: the RuntimeClass of --runtime (default gvisor for runsc; for runc the node's default handler)")
	f.StringVar(&c.storageClass, "storage-class", "", "kubernetes: the StorageClass of programs' /state claims (default: the cluster's default class)")
	f.StringSliceVar(&c.denyCIDRs, "deny-cidr", nil, "kubernetes: addresses (CIDR) no program granted network may reach, besides the private ranges and the nodes' own: the Host's machine when it is not a node (repeatable)")
	f.BoolVar(&c.directKubelet, "kubelet-direct", false, "kubernetes: read resource figures from each node's kubelet, not through the API server's node proxy (a single node on loopback needs it)")
}

// byteSize is a flag holding a byte count written as a number with an
// optional binary unit: 536870912, 512MiB, 512M, 4GiB, 4g ("k", "m", "g",
// "t" with or without "i" and "b" are powers of 1024, as docker --memory
// reads them). 0 means the default.
type byteSize int64

func (b *byteSize) String() string {
	if *b == 0 {
		return ""
	}
	return strconv.FormatInt(int64(*b), 10)
}

func (b *byteSize) Type() string { return "size" }

func (b *byteSize) Set(s string) error {
	n, err := parseByteSize(s)
	if err != nil {
		return err
	}
	*b = byteSize(n)
	return nil
}

func parseByteSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	i := len(t)
	for i > 0 && (t[i-1] < '0' || t[i-1] > '9') {
		i--
	}
	num, unit := t[:i], strings.TrimSuffix(t[i:], "b")
	if u, ok := strings.CutSuffix(unit, "i"); ok {
		if u == "" {
			return 0, fmt.Errorf("%q is not a size (want e.g. 4GiB, 512MiB or a number of bytes)", s)
		}
		unit = u
	}
	shift := map[string]uint{"": 0, "k": 10, "m": 20, "g": 30, "t": 40}
	sh, ok := shift[unit]
	n, err := strconv.ParseInt(num, 10, 64)
	if !ok || err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size (want e.g. 4GiB, 512MiB or a number of bytes)", s)
	}
	if n > math.MaxInt64>>sh {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n << sh, nil
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
