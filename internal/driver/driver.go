// Package driver is the seam between the Host and a container engine. The
// Host's lifecycle code speaks only this interface; the Docker driver
// (driver/docker) implements it today, a Kubernetes driver can later.
//
// The interface is deliberately small and verb-shaped (after Nomad's task
// drivers): build or import an image, run a sandboxed container, watch
// exits, read logs, dial the program's WatcherAPI, and list what exists so
// the Host can reconcile after a restart.
//
// The contract each method keeps (errors, idempotency, events, logs, the
// refusals of specs weaker than the sandbox contract) is checked by the
// conformance kit in package drivertest, which every implementation runs:
// the Docker driver against the engine, and package fake, the in-memory
// driver the Host's tests use where the engine is not the subject.
package driver

import (
	"context"
	"errors"
	"io"
	"net"
	"time"

	"github.com/hershyorg/hershy/internal/statearchive"
)

// Labels put on every image and container the Host creates, so that
// reconciliation can find them again and tell them from anything else.
// Every one starts with LabelPrefix, which user Dockerfiles may not use and
// image labels may not carry into a container.
const (
	LabelPrefix     = "org.hershy."
	LabelManaged    = "org.hershy.managed"    // "true"
	LabelProgram    = "org.hershy.program-id" // program id
	LabelBuild      = "org.hershy.build-id"   // build id
	LabelInstance   = "org.hershy.instance"   // the Host instance (data directory) that owns it
	LabelGeneration = "org.hershy.generation" // start attempt, to tell containers of one program apart
	LabelJob        = "org.hershy.job"        // a one-shot job container (RunJob), e.g. "build"
)

// MinPidsRunsc is the lowest pids limit a gVisor sandbox starts reliably
// with: its own threads count against it (51-62 idle with the full
// contract, about 80 under load, measured here).
const MinPidsRunsc = 128

// ErrNotFound is returned (wrapped) when a container or image does not exist.
var ErrNotFound = errors.New("runtime: not found")

// ErrEngineDown is returned (wrapped) by Check when the engine does not
// answer.
var ErrEngineDown = errors.New("runtime: the engine does not answer")

// ErrRuntimeMissing is returned (wrapped) by Check when the engine answers
// but an OCI runtime asked for cannot run containers: it is not
// registered, or its binary is gone.
var ErrRuntimeMissing = errors.New("runtime: OCI runtime missing")

// ErrNotRunning is returned (wrapped) by Stats when the container exists
// but is not running: a stopped container uses nothing.
var ErrNotRunning = errors.New("runtime: container not running")

// ErrInUse is returned (wrapped) by RemoveImage when a container, running
// or not, still uses the image.
var ErrInUse = errors.New("runtime: image in use")

// Runtime names: the OCI runtime a container runs under.
const (
	RuntimeRunsc = "runsc" // gVisor: the default
	RuntimeRunc  = "runc"  // only when the operator chooses it
)

// Driver is what the Host needs from a container engine. Every method is
// safe for concurrent use and honours ctx.
type Driver interface {
	// Check tells whether the engine answers (else ErrEngineDown) and
	// whether each named OCI runtime is there to run containers (else
	// ErrRuntimeMissing). The Host calls it every few seconds for its
	// health, so it is cheap: no container is run.
	Check(ctx context.Context, runtimes ...string) error

	// BuildImage builds an image from a context directory holding a
	// Dockerfile, writing the build output to out as it comes. It never
	// pulls base images. It returns the image id.
	BuildImage(ctx context.Context, spec ImageSpec, out io.Writer) (imageID string, err error)
	// ImportImage makes an image in one call from rootfs, the tar stream
	// of its only layer (package imagetar writes one), with spec's tag,
	// user, environment, entrypoint and labels, and returns its id. The tag
	// moves to the new image if another image had it. rootfs is read until
	// its end or until the import fails; an error the engine reports while
	// importing is returned, and no image is made. A spec that fails
	// ImportSpec.Check is refused with ErrInvalidSpec before rootfs is read.
	ImportImage(ctx context.Context, spec ImportSpec, rootfs io.Reader) (imageID string, err error)
	// ImageExists reports whether the image (id or tag) exists.
	ImageExists(ctx context.Context, ref string) (bool, error)
	// RemoveImage removes an image; a missing one is not an error.
	RemoveImage(ctx context.Context, ref string) error

	// CreateContainer creates (does not start) a container under the
	// sandbox contract described by spec. A spec weaker than the contract
	// is refused with ErrInvalidSpec (see ContainerSpec.Check); a missing
	// image is ErrNotFound (it is never pulled); a name in use is an error.
	CreateContainer(ctx context.Context, spec ContainerSpec) (containerID string, err error)
	// StartContainer starts a created container.
	StartContainer(ctx context.Context, id string) error
	// StopContainer asks the program to stop (SIGTERM), kills it after
	// grace, and returns once it has exited. A missing or stopped container
	// is not an error.
	StopContainer(ctx context.Context, id string, grace time.Duration) error
	// RemoveContainer force-removes a container; a missing one is not an error.
	RemoveContainer(ctx context.Context, id string) error
	// InspectContainer returns a container's current facts (ErrNotFound if gone).
	InspectContainer(ctx context.Context, id string) (ContainerInfo, error)
	// ListContainers returns every container (running or not) carrying all
	// the given labels, with the facts an engine's list holds: ID, Name,
	// Image, Labels and Running (InspectContainer has the others). It is one
	// engine call however many containers there are: the Host lists at
	// every start and every halt.
	ListContainers(ctx context.Context, labels map[string]string) ([]ContainerInfo, error)

	// Events streams container exits (and OOM kills) of containers with
	// LabelManaged, from the moment of the call, until ctx is done. The
	// channel is closed when the stream ends; the caller re-subscribes and
	// reconciles after an error.
	Events(ctx context.Context) (<-chan Event, <-chan error)

	// Logs streams a container's stdout and stderr as plain demultiplexed
	// text (no engine framing), from since (zero: from the start), following
	// new output when follow is set.
	Logs(ctx context.Context, id string, since time.Time, follow bool) (io.ReadCloser, error)

	// RunJob runs a one-shot container to completion under the sandbox
	// contract (as CreateContainer, but with network "none" always and the
	// given command), streaming its output to out, and removes it. It
	// returns the command's exit status; err is for the engine's failures
	// (and ctx: a cancelled or timed-out job is killed and removed, and err
	// wraps ctx's error). A spec weaker than the contract is refused with
	// ErrInvalidSpec (JobSpec.Check). The Host compiles users' code this
	// way.
	RunJob(ctx context.Context, spec JobSpec, out io.Writer) (JobResult, error)

	// DialContext connects to addr (e.g. "127.0.0.1:8080") inside the
	// container's own network namespace, so a program with network "none"
	// and no published port is still reachable by the Host alone.
	DialContext(ctx context.Context, containerID, addr string) (net.Conn, error)

	// Stats reads a running container's resource usage now: cumulative
	// counters (CPU time, network bytes) and current levels (memory, pids).
	// It is cheap enough to call for a thousand containers every few
	// seconds. A missing container is ErrNotFound, one that exists but is
	// not running ErrNotRunning. A new run of the same container starts its
	// counters again from zero.
	Stats(ctx context.Context, id string) (Stats, error)

	// Close releases the driver's resources.
	Close() error
}

// JobKeeper is what a driver offers when it can keep a job's container up
// between commands (the Docker driver can). The builder uses it to keep one
// build sandbox per user up while that user deploys, so a warm rebuild does
// not pay a sandbox's start and cold /tmp every time; a driver without it
// gets a RunJob per build.
//
// A kept job is removed with RemoveContainer. StopContainer and then
// InspectContainer tell whether anything in it was ever killed for memory
// (ContainerInfo.OOMKilled): a command's own exit status does not.
type JobKeeper interface {
	// StartJob creates and starts a job container that stays up: spec.Cmd
	// must not exit by itself. The contract is RunJob's (network "none"
	// always; ErrInvalidSpec for a weaker spec). If the start fails the
	// container is removed.
	StartJob(ctx context.Context, spec JobSpec) (containerID string, err error)
	// ExecJob runs one command in a kept job's container to completion,
	// streaming its output to out, and returns its exit status. When ctx
	// ends first, ExecJob returns at once with an error wrapping ctx's;
	// the command may still run: remove the container to end it. When the
	// container stops under the command (a memory kill can take the whole
	// sandbox down) the result is exit status 137, with OOMKilled if the
	// engine says so.
	ExecJob(ctx context.Context, containerID string, spec ExecSpec, out io.Writer) (JobResult, error)
}

// VolumeKeeper is what a driver offers when a program's /state and
// secrets must live in the engine's world rather than in the Host's data
// directory (Kubernetes: a Pod's node is not the Host). The Host then
// mounts them with driver.MountClaim and driver.MountSecret instead of Host
// folders, and keeps no /state of its own. Names are DNS labels.
type VolumeKeeper interface {
	// EnsureVolume makes the volume with room for bytes, or grows it
	// (a volume never shrinks: that is ErrInvalidSpec). Its data outlives
	// every container.
	EnsureVolume(ctx context.Context, name string, bytes int64, labels map[string]string) error
	// RemoveVolume removes a volume and its data; a missing one is no error.
	RemoveVolume(ctx context.Context, name string) error
	// PutSecret sets a secret's files (name to content), replacing what it
	// held. Containers see a change when they start.
	PutSecret(ctx context.Context, name string, files map[string][]byte, labels map[string]string) error
	// RemoveSecret removes a secret; a missing one is no error.
	RemoveSecret(ctx context.Context, name string) error
}

// BuildEngine is what a driver offers when programs run elsewhere (a
// cluster) while builds run on this machine: the engine the build
// sandbox's image and jobs belong to, so they are neither pushed nor
// scheduled on the cluster.
type BuildEngine interface {
	BuildEngine() Driver
}

// ExecSpec is one command run in a kept job's container (JobKeeper).
type ExecSpec struct {
	User    string   // "uid:gid", never root
	Cmd     []string // the command
	WorkDir string   // absolute
	Env     []string // KEY=VALUE, added to the container's
}

// Stats is a point-in-time sample of a running container's resource use.
// CPU and network figures are cumulative since the container's process
// started, so a rate is the difference of two samples over At's.
type Stats struct {
	At time.Time // when it was read
	// CPUNanos is the CPU time the container's processes have used, in
	// nanoseconds (user and system, every core).
	CPUNanos int64
	// MemoryBytes is the working set: memory in use minus the inactive
	// file cache the kernel reclaims before it kills for memory (what the
	// kubelet counts and the OOM killer judges).
	MemoryBytes int64
	// MemoryLimitBytes is the container's memory limit (0: none).
	MemoryLimitBytes int64
	// Pids counts the container's tasks (processes and threads; under
	// runsc also gVisor's own).
	Pids int64
	// NetRxBytes and NetTxBytes count bytes received and sent on the
	// container's network interfaces, loopback excluded: 0 for a program
	// with network "none".
	NetRxBytes, NetTxBytes int64
}

// ImageSpec describes an image build.
type ImageSpec struct {
	ContextDir string            // directory holding the Dockerfile and the files it copies
	Dockerfile string            // path of the Dockerfile relative to ContextDir ("Dockerfile")
	Tag        string            // e.g. "hersh-program-<build id>"
	Labels     map[string]string // added to the image
	MaxContext int64             // refuse a context larger than this many bytes (0: no cap)
}

// ImportSpec is the tag and the settings of an imported image
// (ImportImage).
type ImportSpec struct {
	Tag        string            // e.g. "hersh-program-<build id>"
	User       string            // "uid:gid", numeric, not root
	Env        []string          // KEY=VALUE
	Entrypoint []string          // the program and its first arguments
	Labels     map[string]string // put on the image
}

// ContainerSpec describes a program container. The driver enforces the
// sandbox contract: read-only root, Mounts the only writable places, a
// noexec tmpfs at /tmp, no published ports, every capability dropped,
// no-new-privileges, an init process, the given user, and the limits.
type ContainerSpec struct {
	Name    string            // engine-level name, e.g. "hersh-program-<program id>"
	Image   string            // image id or tag
	Runtime string            // RuntimeRunsc or RuntimeRunc
	User    string            // "uid:gid", never root
	Env     []string          // KEY=VALUE
	Labels  map[string]string // must include LabelManaged and LabelProgram
	Mounts  []Mount           // bind mounts (the program's /state, read-only secrets)
	Network bool              // false: network "none"; true: outbound-only network
	Limits  Limits
}

// JobSpec describes a one-shot sandboxed container (RunJob). The contract is
// the program's (runtime, read-only root, no capabilities,
// no-new-privileges, non-root numeric user, an init, limits), with network
// "none" always: a job cannot ask for a network.
type JobSpec struct {
	Name    string // engine-level name
	Image   string
	Runtime string   // RuntimeRunsc or RuntimeRunc
	User    string   // "uid:gid", never root
	Cmd     []string // the command (the image's entrypoint is not used)
	WorkDir string   // absolute
	Env     []string // KEY=VALUE; nothing else of the Host's environment
	Labels  map[string]string
	Mounts  []Mount
	// TmpBytes sizes the tmpfs at /tmp (0: the programs' default). It
	// counts against MemoryBytes.
	TmpBytes int64
	Limits   Limits
}

// JobResult is how a job ended.
type JobResult struct {
	ExitCode  int
	OOMKilled bool // the kernel killed it for exceeding its memory limit
	// Vanished: the job's process was gone while the engine still showed
	// it running (ExitCode is then 137, as for a kill).
	Vanished bool
}

// Mount is a bind mount from the Host's filesystem, or a volume the
// engine keeps by name (Kind).
type Mount struct {
	Source   string // a path on the Host, or the volume's name
	Target   string
	ReadOnly bool
	Kind     MountKind
}

// MountKind says what a Mount's Source is. The Docker driver mounts Host
// folders (the Host and the engine share a machine); the Kubernetes driver
// mounts only what lives in the cluster (a Pod's node is not the Host).
type MountKind string

const (
	MountBind   MountKind = ""       // Source is a folder on the Host
	MountClaim  MountKind = "claim"  // Source names a PersistentVolumeClaim
	MountSecret MountKind = "secret" // Source names a Secret, mounted read-only
)

// Limits are the container's resource limits.
type Limits struct {
	MemoryBytes int64   // hard memory limit
	CPUs        float64 // CPU quota in cores
	Pids        int64   // process/thread limit (>= MinPidsRunsc under runsc)
	LogBytes    int64   // engine-side log size cap
}

// ContainerInfo is what the Host needs to know about a container.
type ContainerInfo struct {
	ID         string
	Name       string
	Image      string
	Labels     map[string]string
	Running    bool
	Pid        int // host pid of the container's init, 0 when not running
	ExitCode   int
	OOMKilled  bool
	StartedAt  time.Time
	FinishedAt time.Time
	Runtime    string
}

// Event is a container lifecycle event the Host reacts to.
type Event struct {
	ContainerID string
	Labels      map[string]string
	Kind        EventKind
	ExitCode    int
	OOMKilled   bool
	At          time.Time
}

// EventKind is what happened to a container.
type EventKind string

const (
	EventStart EventKind = "start"
	EventDie   EventKind = "die" // exited (ExitCode set)
	EventOOM   EventKind = "oom" // the kernel killed it for memory; a die follows
)

// StateCopier is what a driver that keeps volumes (VolumeKeeper) offers to
// copy a volume's files out and in, as statearchive's archive: the Host
// cannot reach a volume that lives in the engine's world, so the engine
// reads and writes it in a sandbox of its own. The archive is checked
// there, entry by entry, with package statearchive's rules; the Host
// checks it too before it sends it when it can. Nothing may run with the
// volume meanwhile: the caller stops the program first.
type StateCopier interface {
	// ExportVolume writes the volume's regular files and folders to w as
	// statearchive.Write does. An error after the first byte leaves w
	// with a truncated archive.
	ExportVolume(ctx context.Context, spec VolumeCopy, w io.Writer) error
	// ImportVolume extracts the archive r beside the volume's files
	// (statearchive.Extract, spec.Limit as the cap), then calls commit and,
	// if it returns nil, replaces the volume's files with the archive's.
	// Until then, and whatever fails, the volume keeps its files. An
	// archive refused is an error wrapping statearchive.ErrRefused; a
	// commit's error is returned as it is.
	ImportVolume(ctx context.Context, spec VolumeCopy, r io.Reader, commit func() error) (statearchive.Result, error)
}

// VolumeCopy names a volume to copy and the sandbox the copy runs in: the
// program's own user and runtime, so the files stay the program's.
type VolumeCopy struct {
	Volume  string            // the volume's name (a MountClaim's Source)
	User    string            // "uid:gid", never root
	Runtime string            // RuntimeRunsc or RuntimeRunc
	Labels  map[string]string // put on what the copy makes (LabelManaged and the instance's)
	Limit   int64             // ImportVolume: the cap of the files' bytes
}
