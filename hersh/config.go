package hersh

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"
)

// Environment variables the Host sets for a program. A program run by hand
// simply leaves them unset.
const (
	EnvAPIAddr  = "HERSH_API_ADDR"  // address the WatcherAPI listens on, e.g. "127.0.0.1:8080"
	EnvStateDir = "HERSH_STATE_DIR" // directory durable context state is kept in, e.g. "/state"
)

// Defaults. They follow the reference implementation for sizes and mature
// supervisors (systemd, Kubernetes' CrashLoopBackOff, suture) for recovery:
// 1 s doubling to a 5 min cap, with jitter so many programs do not retry in step.
const (
	DefaultAPIAddr          = ":8080"
	DefaultSignalCapacity   = 50_000
	DefaultMaxLogEntries    = 50_000
	DefaultMaxMemoEntries   = 1_000
	DefaultRunTimeout       = time.Minute
	DefaultCleanupTimeout   = 10 * time.Second
	DefaultMaxFailures      = 10
	DefaultBackoffBase      = time.Second
	DefaultBackoffMax       = 5 * time.Minute
	DefaultBackoffJitter    = 0.2
	DefaultStateFileName    = "hersh-context.json"
	defaultAPIShutdownGrace = 2 * time.Second
)

// Config configures a Watcher. A zero field takes its default (field by
// field: setting one field never resets the others); a negative or otherwise
// invalid field is an error from New, never silently replaced.
type Config struct {
	// APIAddr is where the WatcherAPI listens. Zero: $HERSH_API_ADDR, else ":8080".
	APIAddr string
	// DisableAPIServer keeps the WatcherAPI off the network; Handler still works.
	DisableAPIServer bool
	// SignalCapacity bounds the user-message queue. (The variable queue
	// holds each watched variable at most once, so the watches bound it.)
	// The queue takes memory as messages arrive, not up front.
	SignalCapacity int
	// MaxLogEntries bounds each execution-log ring buffer. A ring takes
	// memory as it fills, not up front.
	MaxLogEntries int
	// MaxMemoEntries bounds the memo cache.
	MaxMemoEntries int
	// RunTimeout cancels a run's context when it runs longer.
	RunTimeout time.Duration
	// CleanupTimeout bounds the context given to the cleanup function.
	CleanupTimeout time.Duration
	// StateDir enables durable context state. Zero: $HERSH_STATE_DIR, else none.
	StateDir string
	// Env holds immutable values the managed function reads with Context.Env.
	Env map[string]string
	// Recovery configures retries after failed runs.
	Recovery RecoveryConfig
}

// RecoveryConfig sets how failed runs are retried: after the n-th
// consecutive failure the watcher waits Base*2^(n-1) (at most Max, varied by
// ±Jitter), then re-runs; at MaxFailures consecutive failures it crashes.
type RecoveryConfig struct {
	MaxFailures int           // default 10
	Base        time.Duration // default 1s
	Max         time.Duration // default 5m
	// Jitter is a fraction in [0,1). Zero takes the default 0.2; use NoJitter
	// for exact delays.
	Jitter float64
}

// NoJitter, as RecoveryConfig.Jitter, disables jitter (zero means default).
const NoJitter = -1.0

// DefaultConfig returns the configuration New uses for a zero Config,
// ignoring the environment.
func DefaultConfig() Config {
	return Config{
		APIAddr:        DefaultAPIAddr,
		SignalCapacity: DefaultSignalCapacity,
		MaxLogEntries:  DefaultMaxLogEntries,
		MaxMemoEntries: DefaultMaxMemoEntries,
		RunTimeout:     DefaultRunTimeout,
		CleanupTimeout: DefaultCleanupTimeout,
		Recovery: RecoveryConfig{
			MaxFailures: DefaultMaxFailures,
			Base:        DefaultBackoffBase,
			Max:         DefaultBackoffMax,
			Jitter:      DefaultBackoffJitter,
		},
	}
}

// resolve validates c and fills each zero field with its default. The result
// shares nothing with c (Env is copied) so later changes to c have no effect.
func (c Config) resolve() (Config, error) {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("hersh: config: "+format, a...)) }

	d := DefaultConfig()
	if c.APIAddr == "" {
		c.APIAddr = os.Getenv(EnvAPIAddr)
	}
	if c.APIAddr == "" {
		c.APIAddr = d.APIAddr
	}
	if _, port, err := net.SplitHostPort(c.APIAddr); err != nil {
		bad("APIAddr %q: %v", c.APIAddr, err)
	} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		bad("APIAddr %q: port must be a number from 0 to 65535", c.APIAddr)
	}
	positiveInt := func(name string, v *int, def int) {
		switch {
		case *v == 0:
			*v = def
		case *v < 0:
			bad("%s must be positive, got %d", name, *v)
		}
	}
	positiveDur := func(name string, v *time.Duration, def time.Duration) {
		switch {
		case *v == 0:
			*v = def
		case *v < 0:
			bad("%s must be positive, got %s", name, *v)
		}
	}
	positiveInt("SignalCapacity", &c.SignalCapacity, d.SignalCapacity)
	positiveInt("MaxLogEntries", &c.MaxLogEntries, d.MaxLogEntries)
	positiveInt("MaxMemoEntries", &c.MaxMemoEntries, d.MaxMemoEntries)
	positiveDur("RunTimeout", &c.RunTimeout, d.RunTimeout)
	positiveDur("CleanupTimeout", &c.CleanupTimeout, d.CleanupTimeout)
	positiveInt("Recovery.MaxFailures", &c.Recovery.MaxFailures, d.Recovery.MaxFailures)
	positiveDur("Recovery.Base", &c.Recovery.Base, d.Recovery.Base)
	positiveDur("Recovery.Max", &c.Recovery.Max, d.Recovery.Max)
	if c.Recovery.Max < c.Recovery.Base && c.Recovery.Max > 0 && c.Recovery.Base > 0 {
		bad("Recovery.Max (%s) is below Recovery.Base (%s)", c.Recovery.Max, c.Recovery.Base)
	}
	switch j := c.Recovery.Jitter; {
	case j == 0:
		c.Recovery.Jitter = d.Recovery.Jitter
	case j == NoJitter:
		c.Recovery.Jitter = 0
	case j < 0 || j >= 1:
		bad("Recovery.Jitter must be in [0,1) or NoJitter, got %v", j)
	}
	if c.StateDir == "" {
		c.StateDir = os.Getenv(EnvStateDir)
	}
	env := make(map[string]string, len(c.Env))
	for k, v := range c.Env {
		if k == "" {
			bad("Env has an empty key")
		}
		env[k] = v
	}
	c.Env = env
	return c, errors.Join(errs...)
}

// port reports the numeric port of APIAddr (for the config route).
func (c Config) port() int {
	_, p, _ := net.SplitHostPort(c.APIAddr)
	n, _ := strconv.Atoi(p)
	return n
}
