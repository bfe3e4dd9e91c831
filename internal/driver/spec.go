package driver

import (
	"errors"
	"fmt"
	"math"
	"path"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/distribution/reference"
)

// ErrInvalidSpec is returned (wrapped) by CreateContainer and RunJob for a
// spec that asks for less isolation than the sandbox contract, or leaves a
// limit unset, and by ImportImage for settings an engine could misread.
// Every driver applies the same rules (Check), so no engine gives the Host
// a weaker container than another would.
var ErrInvalidSpec = errors.New("driver: the spec breaks the sandbox contract")

// Smallest limits a driver accepts.
const (
	MinMemoryBytes = 6 << 20  // below this no Go program starts
	MinLogBytes    = 16 << 10 // the engine-side log cap of a program container
)

// Check applies the sandbox contract's rules to a program container's
// spec: an image, an allowed runtime (empty means runsc), a numeric
// non-root user and group, LabelProgram, every limit set (pids at least
// MinPidsRunsc under runsc), and mounts with absolute clean paths that do
// not cover /, /tmp or the engine's own files, each target once. The error
// wraps ErrInvalidSpec and says which rule.
func (s ContainerSpec) Check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("container spec: %w: "+format, append([]any{ErrInvalidSpec}, args...)...)
	}
	if s.Image == "" {
		return bad("no image")
	}
	rt, err := checkRuntime(s.Runtime)
	if err != nil {
		return bad("%v", err)
	}
	if err := checkUser(s.User); err != nil {
		return bad("%v", err)
	}
	if s.Labels[LabelProgram] == "" {
		return bad("label %s is required", LabelProgram)
	}
	if err := checkLimits(rt, s.Limits); err != nil {
		return bad("%v", err)
	}
	if s.Limits.LogBytes < MinLogBytes {
		return bad("log cap %d bytes: at least %d is required", s.Limits.LogBytes, MinLogBytes)
	}
	if err := checkMounts(s.Mounts); err != nil {
		return bad("%v", err)
	}
	return nil
}

// Check applies the contract's rules to a job's spec: those of a program
// container (but no program label, and no log cap: a job's output goes to
// its caller), a command, an absolute clean work directory, and a /tmp that
// fits in the memory limit. The error wraps ErrInvalidSpec.
func (s JobSpec) Check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("job spec: %w: "+format, append([]any{ErrInvalidSpec}, args...)...)
	}
	rt, err := checkRuntime(s.Runtime)
	switch {
	case s.Image == "":
		return bad("no image")
	case len(s.Cmd) == 0:
		return bad("no command")
	case s.WorkDir != "" && (!path.IsAbs(s.WorkDir) || path.Clean(s.WorkDir) != s.WorkDir):
		return bad("work dir %q must be an absolute clean path", s.WorkDir)
	case err != nil:
		return bad("%v", err)
	case s.TmpBytes < 0 || s.TmpBytes > s.Limits.MemoryBytes:
		return bad("tmpfs of %d bytes: it must fit in the memory limit", s.TmpBytes)
	}
	if err := checkUser(s.User); err != nil {
		return bad("%v", err)
	}
	if err := checkLimits(rt, s.Limits); err != nil {
		return bad("%v", err)
	}
	if err := checkMounts(s.Mounts); err != nil {
		return bad("%v", err)
	}
	return nil
}

// Check applies the rules of a command in a kept job: a numeric non-root
// user, a command, an absolute clean work directory and KEY=VALUE
// environment entries. The error wraps ErrInvalidSpec.
func (s ExecSpec) Check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("exec spec: %w: "+format, append([]any{ErrInvalidSpec}, args...)...)
	}
	switch {
	case len(s.Cmd) == 0:
		return bad("no command")
	case s.WorkDir != "" && (!path.IsAbs(s.WorkDir) || path.Clean(s.WorkDir) != s.WorkDir):
		return bad("work dir %q must be an absolute clean path", s.WorkDir)
	}
	for _, kv := range s.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return bad("environment entry %q is not KEY=VALUE", kv)
		}
	}
	if err := checkUser(s.User); err != nil {
		return bad("%v", err)
	}
	return nil
}

// Check applies the rules of an imported image's settings: a tag that is
// a valid name (no digest: the engine would refuse it), a numeric non-root
// "uid:gid", KEY=VALUE environment entries with a portable name, an
// entrypoint, label keys of letters, digits and ".-_/", and no control
// character in any of them. An engine may carry the settings in a text
// format of lines (the Docker driver: Dockerfile instructions), where a
// line break in a value would start an instruction of its own. The error
// wraps ErrInvalidSpec.
func (s ImportSpec) Check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("import spec: %w: "+format, append([]any{ErrInvalidSpec}, args...)...)
	}
	named, err := reference.ParseNormalizedNamed(s.Tag)
	if err != nil {
		return bad("tag %q: %v", s.Tag, err)
	}
	if _, ok := named.(reference.Digested); ok {
		return bad("tag %q names a digest", s.Tag)
	}
	if err := checkUser(s.User); err != nil {
		return bad("%v", err)
	}
	for _, kv := range s.Env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !envName.MatchString(k) {
			return bad("environment entry %q: KEY=VALUE with a name of letters, digits and _ is required", kv)
		}
		if err := plainText(v); err != nil {
			return bad("environment variable %s: %v", k, err)
		}
	}
	if len(s.Entrypoint) == 0 {
		return bad("no entrypoint")
	}
	for _, a := range s.Entrypoint {
		if err := plainText(a); err != nil {
			return bad("entrypoint %q: %v", a, err)
		}
	}
	for k, v := range s.Labels {
		if !labelKey.MatchString(k) {
			return bad("label key %q: letters, digits and \".-_/\" only", k)
		}
		if err := plainText(v); err != nil {
			return bad("label %s: %v", k, err)
		}
	}
	return nil
}

var (
	envName  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	labelKey = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]*$`)
	// volumeName is a DNS name without dots, which every engine accepts.
	volumeName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,251}[a-z0-9])?$`)
)

// plainText refuses invalid UTF-8 and control characters (line breaks,
// NUL, escapes).
func plainText(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("not valid UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("control character %U", r)
		}
	}
	return nil
}

// SpecRuntime is the runtime a spec's Runtime field names: runsc when it
// is empty.
func SpecRuntime(rt string) string {
	if rt == "" {
		return RuntimeRunsc
	}
	return rt
}

func checkRuntime(rt string) (string, error) {
	name := SpecRuntime(rt)
	if name != RuntimeRunsc && name != RuntimeRunc {
		return "", fmt.Errorf("runtime %q is not allowed (only %s or %s)", rt, RuntimeRunsc, RuntimeRunc)
	}
	return name, nil
}

// checkUser accepts only a numeric "uid:gid" with neither being 0: a name
// could map to root inside the image, and a missing gid would mean group
// root.
func checkUser(u string) error {
	uid, gid, ok := strings.Cut(u, ":")
	if u == "" || u == "root" || u == "0" || !ok {
		return fmt.Errorf("user %q: a numeric non-root \"uid:gid\" is required", u)
	}
	for _, part := range []string{uid, gid} {
		n, err := strconv.ParseUint(part, 10, 32)
		if err != nil {
			return fmt.Errorf("user %q: a numeric non-root \"uid:gid\" is required", u)
		}
		if n == 0 {
			return fmt.Errorf("user %q: root (0) is not allowed as user or group", u)
		}
	}
	return nil
}

// checkLimits refuses a memory, CPU or pids limit that is unset or too
// small to be safe under runtime rt.
func checkLimits(rt string, lim Limits) error {
	switch {
	case lim.MemoryBytes < MinMemoryBytes:
		return fmt.Errorf("memory limit %d bytes: at least %d MiB is required", lim.MemoryBytes, MinMemoryBytes>>20)
	case !(lim.CPUs > 0) || math.IsInf(lim.CPUs, 0):
		return fmt.Errorf("CPU limit %v: a positive number of cores is required", lim.CPUs)
	case lim.Pids <= 0:
		return fmt.Errorf("pids limit %d: a positive limit is required", lim.Pids)
	case rt == RuntimeRunsc && lim.Pids < MinPidsRunsc:
		return fmt.Errorf("pids limit %d is below %d, the minimum under runsc (gVisor's own threads count against it)", lim.Pids, MinPidsRunsc)
	}
	return nil
}

// checkMounts refuses mounts that are not absolute clean paths, that cover
// / or /tmp (the contract's tmpfs) or the engine's own files, or that name
// one target twice.
func checkMounts(ms []Mount) error {
	targets := map[string]bool{}
	for _, m := range ms {
		src, dst := m.Source, m.Target
		switch {
		case m.Kind != MountBind && m.Kind != MountClaim && m.Kind != MountSecret:
			return fmt.Errorf("mount kind %q is unknown", m.Kind)
		case m.Kind == MountBind && (!path.IsAbs(src) || path.Clean(src) != src):
			return fmt.Errorf("mount source %q must be an absolute clean path", src)
		case m.Kind != MountBind && !volumeName.MatchString(src):
			return fmt.Errorf("mount source %q: a %s's name of lowercase letters, digits and '-' is required", src, m.Kind)
		case m.Kind == MountSecret && !m.ReadOnly:
			return fmt.Errorf("secret mount %q must be read-only", dst)
		case !path.IsAbs(dst) || path.Clean(dst) != dst || dst == "/":
			return fmt.Errorf("mount target %q must be an absolute clean path below /", dst)
		case dst == "/tmp" || strings.HasPrefix(dst, "/tmp/") || ReservedTarget(dst):
			return fmt.Errorf("mount target %q is reserved", dst)
		case targets[dst]:
			return fmt.Errorf("mount target %q given twice", dst)
		}
		targets[dst] = true
	}
	return nil
}

// ReservedTarget reports whether a path inside a container belongs to the
// engine (/proc, /sys, /dev and the files it writes in /etc): nothing may
// be mounted there.
func ReservedTarget(dst string) bool {
	for _, r := range []string{"/proc", "/sys", "/dev", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf"} {
		if dst == r || strings.HasPrefix(dst, r+"/") {
			return true
		}
	}
	return false
}

// BindOnly refuses, with ErrInvalidSpec, a mount that is not of a Host
// folder: for an engine on the Host's machine, which keeps no volumes of
// its own for the Host.
func BindOnly(ms []Mount) error {
	for _, m := range ms {
		if m.Kind != MountBind {
			return fmt.Errorf("%w: mount of %s: this engine mounts Host folders only, not a %s", ErrInvalidSpec, m.Target, m.Kind)
		}
	}
	return nil
}
