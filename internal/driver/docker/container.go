package docker

import (
	"context"
	"fmt"
	"math"
	"os/exec"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"

	"github.com/hershyorg/hershy/internal/driver"
)

// TmpfsOptions are the options of the /tmp tmpfs every container gets.
const TmpfsOptions = "rw,noexec,nosuid,nodev,size=16m"

// logFiles is how many json-file log files the engine keeps per container;
// each may hold LogBytes/logFiles bytes.
const logFiles = 2

// CreateContainer creates a container under the sandbox contract:
//
//   - the runtime is runsc (the default when spec.Runtime is empty) or runc;
//   - read-only root filesystem, spec.Mounts as bind mounts (writable only
//     when not ReadOnly), a tmpfs at /tmp (TmpfsOptions), no /dev/shm (IPC
//     mode "none");
//   - no exposed or published ports; network "none", or with spec.Network
//     the Host-owned EgressNetwork bridge (no inter-container traffic);
//   - every capability dropped, no-new-privileges, an init process as pid 1;
//   - a numeric non-root "uid:gid" user (a name could map to root inside the
//     image, and a missing gid would mean group root);
//   - memory without swap, CPU quota, pids limit (>= MinPidsRunsc under
//     runsc), json-file logs capped at LogBytes;
//   - restart policy "no": the Host supervises restarts itself.
//
// A spec that asks for less isolation, or leaves a limit unset, is refused.
//
// An image may carry settings the Host must not honour (an image the
// operator loaded may have them even though user Dockerfiles cannot add
// them), so the image is inspected first and overridden (see overrideImage):
// its volumes are covered, its health check disabled, and its labels under
// driver.LabelPrefix blanked. The container is created from the inspected
// image's id, so the image checked is the image run.
func (d *Driver) CreateContainer(ctx context.Context, spec driver.ContainerSpec) (string, error) {
	var img imageFacts
	if spec.Image != "" {
		ins, err := d.cli.ImageInspect(ctx, spec.Image)
		if err != nil {
			return "", notFound(ctxErr(ctx, err), "inspect image", spec.Image)
		}
		img.ID = ins.ID
		if ins.Config != nil {
			for v := range ins.Config.Volumes {
				img.Volumes = append(img.Volumes, v)
			}
			img.Labels = ins.Config.Labels
		}
	}
	cfg, hc, nc, err := containerConfig(spec, img)
	if err != nil {
		return "", err
	}
	if spec.Network {
		if err := d.ensureEgressNetwork(ctx); err != nil {
			return "", err
		}
	}
	resp, err := d.cli.ContainerCreate(ctx, cfg, hc, nc, nil, spec.Name)
	if err != nil {
		return "", fmt.Errorf("docker: create container %s: %w", spec.Name, ctxErr(ctx, err))
	}
	return resp.ID, nil
}

// imageFacts is what CreateContainer reads from the image before it
// creates a container from it.
type imageFacts struct {
	ID      string            // the image id the container is created from
	Volumes []string          // paths the image declares as VOLUME
	Labels  map[string]string // the image's labels
}

// containerConfig validates spec and translates it into the engine's
// configuration for image img. It is pure, so the refusals are unit-tested.
func containerConfig(spec driver.ContainerSpec, img imageFacts) (*container.Config, *container.HostConfig, *network.NetworkingConfig, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("docker: container spec: "+format, args...)
	}
	if err := spec.Check(); err != nil {
		return nil, nil, nil, fmt.Errorf("docker: %w", err)
	}
	if err := driver.BindOnly(spec.Mounts); err != nil {
		return nil, nil, nil, fmt.Errorf("docker: %w", err)
	}
	rtName := driver.SpecRuntime(spec.Runtime)
	lim := spec.Limits
	mounts := bindMounts(spec.Mounts)
	targets := make(map[string]bool, len(mounts))
	for _, m := range mounts {
		targets[m.Target] = true
	}

	labels := make(map[string]string, len(spec.Labels)+1)
	for k, v := range spec.Labels {
		labels[k] = v
	}
	labels[driver.LabelManaged] = "true"

	if img.ID == "" {
		return nil, nil, nil, bad("image %s was not inspected", spec.Image)
	}
	covers, err := overrideImage(img, targets, labels)
	if err != nil {
		return nil, nil, nil, bad("image %s: %v", spec.Image, err)
	}
	mounts = append(mounts, covers...)

	netMode := container.NetworkMode("none")
	var nc *network.NetworkingConfig
	if spec.Network {
		netMode = container.NetworkMode(EgressNetwork)
		nc = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{EgressNetwork: {}}}
	}

	pids := lim.Pids
	useInit := true
	cfg := &container.Config{
		Image:      img.ID,
		User:       spec.User,
		Env:        append([]string(nil), spec.Env...),
		Labels:     labels,
		StopSignal: "SIGTERM",
		Tty:        false,
		OpenStdin:  false,
		// The engine would run an image's HEALTHCHECK inside the container
		// on its own schedule (every millisecond, if the image says so),
		// outside the program's limits; the Host probes readiness itself.
		Healthcheck: &container.HealthConfig{Test: []string{"NONE"}},
	}
	hc := &container.HostConfig{
		Runtime:        rtName,
		ReadonlyRootfs: true,
		Mounts:         mounts,
		Tmpfs:          map[string]string{"/tmp": TmpfsOptions},
		IpcMode:        container.IPCModeNone,
		NetworkMode:    netMode,
		CapDrop:        []string{"ALL"},
		SecurityOpt:    []string{"no-new-privileges:true"},
		Init:           &useInit,
		Privileged:     false,
		RestartPolicy:  container.RestartPolicy{Name: container.RestartPolicyDisabled},
		LogConfig: container.LogConfig{Type: "json-file", Config: map[string]string{
			"max-size": strconv.FormatInt((lim.LogBytes+logFiles-1)/logFiles, 10),
			"max-file": strconv.Itoa(logFiles),
		}},
		Resources: container.Resources{
			Memory:     lim.MemoryBytes,
			MemorySwap: lim.MemoryBytes, // equal: no swap
			NanoCPUs:   int64(math.Round(lim.CPUs * 1e9)),
			PidsLimit:  &pids,
		},
	}
	return cfg, hc, nc, nil
}

// bindMounts translates bind mounts (spec.Check has validated them).
func bindMounts(ms []driver.Mount) []mount.Mount {
	mounts := make([]mount.Mount, 0, len(ms))
	for _, m := range ms {
		mounts = append(mounts, mount.Mount{
			Type:        mount.TypeBind,
			Source:      m.Source,
			Target:      m.Target,
			ReadOnly:    m.ReadOnly,
			BindOptions: &mount.BindOptions{Propagation: mount.PropagationRPrivate},
		})
	}
	return mounts
}

// The tmpfs that covers each VOLUME an image declares is empty, 4 KiB,
// owned by root with mode 0555, and read-only unless a mount of the spec
// lies below it (the engine must be able to create that mount's mount point
// in it). Either way the program, a non-root user without capabilities,
// cannot write there.
const (
	volumeCoverSize = 4 << 10
	volumeCoverMode = 0o555
)

// overrideImage returns what overrides the image's own settings in a
// container of the Host:
//
//   - every VOLUME gets a tmpfs mount (volumeCoverSize) at its path, so
//     the engine, which creates an anonymous volume only where nothing is
//     mounted, creates none: a volume would be writable storage outside
//     /state, kept by the engine after the container. Covering rather than
//     refusing lets stock images that declare volumes run; their program
//     sees an empty read-only directory there and keeps its data in /state.
//     A path already mounted by the spec (or /tmp) is left alone; a relative
//     path (the engine mounts it at a path no cover can name), / and the
//     engine's own places (/proc, /sys, /dev, /etc/hosts...) are refused;
//   - every image label under driver.LabelPrefix that the spec does not set is
//     set to "" in labels: the engine copies an image's labels into the
//     container's unless the container has the key, and reconciliation and
//     the event loop trust these labels (an empty one names nothing).
//
// targets are the spec's mount targets.
func overrideImage(img imageFacts, targets map[string]bool, labels map[string]string) ([]mount.Mount, error) {
	vols := append([]string(nil), img.Volumes...)
	sort.Strings(vols)
	var covers []mount.Mount
	for _, v := range vols {
		dst := path.Clean(v)
		switch {
		case !path.IsAbs(v):
			return nil, fmt.Errorf("it declares VOLUME %q, a relative path the Host cannot cover; rebuild it without the volume", v)
		case dst == "/" || driver.ReservedTarget(dst):
			return nil, fmt.Errorf("it declares VOLUME %q, where the Host cannot cover it; rebuild it without the volume", v)
		case targets[dst] || dst == "/tmp":
			continue // the spec's own mount is there already
		}
		below := false
		for t := range targets {
			below = below || strings.HasPrefix(t, dst+"/")
		}
		covers = append(covers, mount.Mount{
			Type:         mount.TypeTmpfs,
			Target:       dst,
			ReadOnly:     !below,
			TmpfsOptions: &mount.TmpfsOptions{SizeBytes: volumeCoverSize, Mode: volumeCoverMode},
		})
	}
	for k := range img.Labels {
		if _, set := labels[k]; !set && strings.HasPrefix(strings.ToLower(k), driver.LabelPrefix) {
			labels[k] = ""
		}
	}
	return covers, nil
}

// ensureEgressNetwork creates EgressNetwork when missing, checks that an
// existing one is a bridge with inter-container traffic disabled, and
// closes the host to it (guardHost).
func (d *Driver) ensureEgressNetwork(ctx context.Context) error {
	d.netMu.Lock()
	defer d.netMu.Unlock()
	n, err := d.cli.NetworkInspect(ctx, EgressNetwork, network.InspectOptions{})
	if cerrdefs.IsNotFound(err) {
		_, err = d.cli.NetworkCreate(ctx, EgressNetwork, network.CreateOptions{
			Driver: "bridge",
			Options: map[string]string{
				"com.docker.network.bridge.enable_icc": "false",
				bridgeNameOption:                       EgressBridge,
			},
			Labels: map[string]string{driver.LabelManaged: "true"},
		})
		if err != nil && !cerrdefs.IsConflict(err) {
			return fmt.Errorf("docker: create network %s: %w", EgressNetwork, err)
		}
		n, err = d.cli.NetworkInspect(ctx, EgressNetwork, network.InspectOptions{})
	}
	if err != nil {
		return fmt.Errorf("docker: inspect network %s: %w", EgressNetwork, err)
	}
	if n.Driver != "bridge" || n.Options["com.docker.network.bridge.enable_icc"] != "false" {
		return fmt.Errorf("docker: network %s exists but is not a bridge with inter-container traffic disabled (driver %q, options %v); remove it and let the Host create it", EgressNetwork, n.Driver, n.Options)
	}
	return guardHost(ctx, bridgeName(n.ID, n.Options))
}

// EgressBridge is the host interface of EgressNetwork when the Host created
// it (a network made by an older Host has the engine's br-<id> name).
const EgressBridge = "hershy-egress0"

const bridgeNameOption = "com.docker.network.bridge.name"

// bridgeName is the host interface of a bridge network: the name given at
// creation, or the engine's default br-<first 12 digits of the id>.
func bridgeName(id string, options map[string]string) string {
	if b := options[bridgeNameOption]; b != "" {
		return b
	}
	if len(id) > 12 {
		id = id[:12]
	}
	return "br-" + id
}

// guardHost makes the host drop every packet that arrives from the egress
// bridge and is addressed to the host itself (the INPUT chain; traffic
// going out through the host is FORWARD and unaffected). Without it a
// program granted outbound network could reach any service of the host
// listening on more than loopback, through the bridge's gateway or any
// other host address. Idempotent: the rule is added only when missing.
// No rule, no egress: an error here fails the container's creation.
func guardHost(ctx context.Context, bridge string) error {
	rule := []string{"INPUT", "-i", bridge, "-j", "DROP"}
	check := exec.CommandContext(ctx, "iptables", append([]string{"-w", "-C"}, rule...)...)
	if check.Run() == nil {
		return nil
	}
	out, err := exec.CommandContext(ctx, "iptables", append([]string{"-w", "-I"}, rule...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("docker: closing the host to network %s (iptables -I %s): %v: %s",
			EgressNetwork, strings.Join(rule, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// StartContainer starts a created (or stopped) container.
func (d *Driver) StartContainer(ctx context.Context, id string) error {
	d.forget(id)
	if err := d.cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		return notFound(ctxErr(ctx, err), "start container", id)
	}
	return nil
}

// StopContainer sends SIGTERM, kills the container after grace, and returns
// once it is no longer running. Missing or stopped containers are fine.
func (d *Driver) StopContainer(ctx context.Context, id string, grace time.Duration) error {
	defer d.forget(id)
	secs := int(math.Ceil(grace.Seconds()))
	if secs < 0 {
		secs = 0
	}
	err := d.cli.ContainerStop(ctx, id, container.StopOptions{Timeout: &secs})
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("docker: stop container %s: %w", id, ctxErr(ctx, err))
	}
	// The engine returns once the container stopped; make sure of it.
	waitC, errC := d.cli.ContainerWait(ctx, id, container.WaitConditionNotRunning)
	select {
	case <-waitC:
		return nil
	case err := <-errC:
		if err == nil || cerrdefs.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("docker: wait for container %s: %w", id, ctxErr(ctx, err))
	}
}

// RemoveContainer force-removes a container and its anonymous volumes. A
// missing container is fine; a removal already in progress is waited for.
func (d *Driver) RemoveContainer(ctx context.Context, id string) error {
	defer d.forget(id)
	err := d.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true})
	switch {
	case err == nil, cerrdefs.IsNotFound(err):
		return nil
	case cerrdefs.IsConflict(err) && strings.Contains(err.Error(), "already in progress"):
		for {
			if _, err := d.cli.ContainerInspect(ctx, id); cerrdefs.IsNotFound(err) {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("docker: remove container %s: %w", id, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	default:
		return fmt.Errorf("docker: remove container %s: %w", id, ctxErr(ctx, err))
	}
}

// InspectContainer returns the container's facts; driver.ErrNotFound (wrapped)
// when it does not exist.
func (d *Driver) InspectContainer(ctx context.Context, id string) (driver.ContainerInfo, error) {
	c, err := d.cli.ContainerInspect(ctx, id)
	if err != nil {
		return driver.ContainerInfo{}, notFound(ctxErr(ctx, err), "inspect container", id)
	}
	info := driver.ContainerInfo{
		ID:    c.ID,
		Name:  strings.TrimPrefix(c.Name, "/"),
		Image: c.Image,
	}
	if c.Config != nil {
		info.Labels = c.Config.Labels
	}
	if c.HostConfig != nil {
		info.Runtime = c.HostConfig.Runtime
	}
	if s := c.State; s != nil {
		info.Running = s.Running
		info.Pid = s.Pid
		info.ExitCode = s.ExitCode
		info.OOMKilled = s.OOMKilled
		info.StartedAt = engineTime(s.StartedAt)
		info.FinishedAt = engineTime(s.FinishedAt)
	}
	return info, nil
}

// engineTime parses the engine's timestamps; its "0001-01-01T00:00:00Z"
// (never happened) becomes the zero time.
func engineTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() <= 1 {
		return time.Time{}
	}
	return t
}

// ListContainers returns every container (in any state) that carries all
// the given labels, from the engine's list alone: one call, whatever the
// number of containers. (An inspect per container made a Host's start
// with 1,000 programs take 28 s.)
func (d *Driver) ListContainers(ctx context.Context, labels map[string]string) ([]driver.ContainerInfo, error) {
	args := filters.NewArgs()
	for k, v := range labels {
		args.Add("label", k+"="+v)
	}
	list, err := d.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: args})
	if err != nil {
		return nil, fmt.Errorf("docker: list containers: %w", ctxErr(ctx, err))
	}
	out := make([]driver.ContainerInfo, 0, len(list))
	for _, c := range list {
		info := driver.ContainerInfo{ID: c.ID, Image: c.ImageID, Labels: c.Labels}
		if len(c.Names) > 0 {
			info.Name = strings.TrimPrefix(c.Names[0], "/")
		}
		// The engine's inspect counts a paused or restarting container as
		// running too.
		switch c.State {
		case "running", "paused", "restarting":
			info.Running = true
		}
		out = append(out, info)
	}
	return out, nil
}
