package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/hershyorg/hershy/internal/builder"
	"github.com/hershyorg/hershy/internal/dockerfile"
	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/source"
	"github.com/hershyorg/hershy/internal/store"
)

// CreateRequest is a new program: its owner, its source (a Dockerfile and
// files, or a Go module without Dockerfile) and per-program options.
type CreateRequest struct {
	UserID     string
	By         string // the user asking, recorded with the first release ("": UserID)
	Dockerfile string
	Files      source.Files
	Options    ProgramOptions
}

// ProgramOptions are the per-program settings. Zero values take the
// Host's defaults.
type ProgramOptions struct {
	Network       bool              // outbound network (never other programs or the Host API)
	MemoryBytes   int64             // hard memory limit
	CPUs          float64           // CPU quota in cores
	RestartPolicy string            // always | on-failure (default) | never
	Env           map[string]string // extra environment variables
	StateBytes    int64             // size cap of /state (at most the Host's MaxStateBytes)
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

// validate checks options at the edge, with errors that name the field.
func (o ProgramOptions) validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
	}
	if o.MemoryBytes != 0 && o.MemoryBytes < 32<<20 {
		return bad("memory_bytes must be at least 32 MiB") // the upper limit is the operator's (Quotas)
	}
	if o.CPUs != 0 && (o.CPUs < 0.05 || o.CPUs > 64) {
		return bad("cpus must be between 0.05 and 64")
	}
	if _, err := lifecycle.ParseRestartPolicy(o.RestartPolicy); err != nil {
		return bad("%v", err)
	}
	if len(o.Env) > 100 {
		return bad("at most 100 environment variables")
	}
	for k, v := range o.Env {
		if !envName.MatchString(k) {
			return bad("environment variable name %q is not valid", k)
		}
		if reservedEnv(k) {
			return bad("environment variable %q is reserved for the Host (PATH, and names starting with HERSH_ or HERSHY_)", k)
		}
		if len(v) > 32<<10 || containsNUL(v) {
			return bad("environment variable %q: value too long or contains NUL", k)
		}
	}
	return nil
}

// reservedEnv reports whether name is one a program may not set: the
// Host's own (spec sets HERSH_API_ADDR, HERSH_STATE_DIR, HERSHY_PROGRAM_ID,
// and the HERSH_ and HERSHY_ prefixes are kept for more), and PATH, which
// the image decides (a program's PATH pointing elsewhere would change which
// binary its own exec calls run, with nothing in the source to show it).
// The prefixes are matched regardless of case: the kernel would keep
// "hershy_program_id" apart, but a reader of the program's options would
// not.
func reservedEnv(name string) bool {
	up := strings.ToUpper(name)
	return up == "PATH" || strings.HasPrefix(up, "HERSH_") || strings.HasPrefix(up, "HERSHY_")
}

func containsNUL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return true
		}
	}
	return false
}

// Create validates and stores a new program; it builds nothing yet. It is
// atomic: the program's folder is assembled under tmp/ and renamed into
// place, then recorded; any failure leaves nothing behind. It fails with
// ErrQuota when the user has the most programs allowed or memory_bytes is
// above the operator's limit.
func (h *Host) Create(ctx context.Context, req CreateRequest) (_ store.Program, err error) {
	defer func() { err = h.relErr(err) }()
	if err := source.ValidateUserID(req.UserID); err != nil {
		return store.Program{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := source.ValidateSource(req.Dockerfile, req.Files, h.opts.Source); err != nil {
		return store.Program{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if !source.IsGoModule(req.Dockerfile, req.Files) && req.Dockerfile == "" && req.Files[source.DockerfileName] == "" {
		return store.Program{}, fmt.Errorf("%w: without a dockerfile the files must form a Go module (a go.mod at the root)", ErrInvalid)
	}
	if err := req.Options.validate(); err != nil {
		return store.Program{}, err
	}
	if err := h.checkMemoryOption(req.Options.MemoryBytes); err != nil {
		return store.Program{}, err
	}
	// A first count, before writing anything; the one that decides is
	// made again below, under the lock, with the record.
	if err := h.checkProgramCount(req.UserID); err != nil {
		return store.Program{}, err
	}
	if err := h.checkStateBytes(req.Options.StateBytes); err != nil {
		return store.Program{}, err
	}
	if err := h.checkDockerfile(ctx, req.UserID, req.Dockerfile, req.Files); err != nil {
		return store.Program{}, err
	}
	if err := h.checkGoModule(req.Dockerfile, req.Files); err != nil {
		return store.Program{}, err
	}
	policy, _ := lifecycle.ParseRestartPolicy(req.Options.RestartPolicy)
	buildID := source.BuildID(req.UserID, req.Dockerfile, req.Files)
	id := source.NewProgramID(req.UserID, buildID)

	tmp, err := os.MkdirTemp(filepath.Join(h.opts.DataDir, "tmp"), id+"-")
	if err != nil {
		return store.Program{}, err
	}
	defer os.RemoveAll(tmp) // gone after the rename, or on failure
	if err := source.WriteTree(filepath.Join(tmp, "src"), req.Dockerfile, req.Files); err != nil {
		return store.Program{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := makeProgramDirs(tmp); err != nil {
		return store.Program{}, err
	}
	h.quotaMu.Lock()
	defer h.quotaMu.Unlock()
	if err := h.checkProgramCount(req.UserID); err != nil {
		return store.Program{}, err
	}
	dir := h.programDir(id)
	if err := os.Rename(tmp, dir); err != nil {
		return store.Program{}, err
	}
	// The cap is fixed now: a later change of the Host's default does not
	// move it.
	stateBytes := req.Options.StateBytes
	if stateBytes == 0 && (h.states != nil || h.volumes != nil) {
		stateBytes = h.opts.StateBytes
	}
	if err := h.ensureState(ctx, store.Program{ID: id, Options: store.Options{StateBytes: stateBytes}}); err != nil {
		h.removeProgramDir(id)
		return store.Program{}, err
	}
	row, err := h.store.CreateProgram(ctx, store.Program{
		ID: id, UserID: req.UserID,
		Program: lifecycle.Program{
			BuildID: buildID, State: lifecycle.Created, Desired: lifecycle.DesiredStopped, Policy: policy,
		},
		Options: store.Options{
			Network: req.Options.Network, MemoryBytes: req.Options.MemoryBytes,
			CPUs: req.Options.CPUs, Env: req.Options.Env, StateBytes: stateBytes,
		},
	})
	if err != nil {
		h.removeProgramDir(id)
		return store.Program{}, err
	}
	h.supervise(row)
	h.observe(Change{ProgramID: id, UserID: row.UserID, At: row.CreatedAt, Next: row.Program, Row: row})
	by := req.By
	if by == "" {
		by = req.UserID
	}
	if _, err := h.addRelease(ctx, id, buildID, by, "", req.Dockerfile, req.Files); err != nil {
		h.log.Warn("recording the first release", "program", id, "err", err)
	}
	return row, nil
}

// checkDockerfile refuses (ErrInvalid) a Dockerfile the policy of package
// dockerfile refuses (read with the engine's own parser: RUN, ADD, VOLUME,
// variables in FROM, image ids and the rest, each with its line), and one
// that builds on a program's image (hersh-program-<build id>, any tag, by
// FROM or COPY --from) when no program of userID has that build: otherwise
// a user could layer on, and read, another user's program. Any other base
// the engine has (an image the operator loaded) is left to the build, which
// refuses one that is missing.
func (h *Host) checkDockerfile(ctx context.Context, userID, df string, files source.Files) error {
	for _, src := range []string{df, files[source.DockerfileName]} {
		if src == "" {
			continue
		}
		res, err := dockerfile.Check(src)
		if err != nil {
			return fmt.Errorf("%w: dockerfile: %v", ErrInvalid, err)
		}
		for _, base := range res.Bases {
			buildID, ok := programImageBuild(base.Ref)
			if !ok {
				continue
			}
			mine, err := h.store.UserHasBuild(ctx, userID, buildID)
			if err != nil {
				return err
			}
			if !mine {
				return fmt.Errorf("%w: dockerfile: line %d: %s: no program of yours was built from it", ErrInvalid, base.Line, base)
			}
		}
	}
	return nil
}

// programImageBuild returns the build id of a reference to a program's
// image (see imageTag): its last path element, without tag or digest,
// starts with hersh-program-. Registry and repository path are ignored, so
// no spelling of the name (docker.io/library/..., a tag, a digest) escapes
// the check.
func programImageBuild(ref string) (string, bool) {
	name, _, _ := strings.Cut(ref, "@")
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	name, _, _ = strings.Cut(name, ":")
	prefix := imageTag("")
	if len(name) < len(prefix) || !strings.EqualFold(name[:len(prefix)], prefix) {
		return "", false
	}
	return name[len(prefix):], true
}

// checkGoModule refuses (ErrInvalid) a Go-source program whose go.mod or
// go.sum the build would refuse: unparsable, a newer Go than the Host's, a
// replace pointing outside the source, a requirement without a go.sum
// entry. Said now, with the line, rather than as a failed build later.
func (h *Host) checkGoModule(dockerfile string, files source.Files) error {
	if !source.IsGoModule(dockerfile, files) {
		return nil
	}
	if err := h.builder.CheckGoModule(files); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, trimPrefix(err, "build: "))
	}
	return nil
}

// makeProgramDirs creates state/ (owned by the program's non-root user, the
// only place it can write; the mount point of its capped filesystem unless
// the Host runs uncapped) and logs/ next to src/.
func makeProgramDirs(dir string) error {
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		return err
	}
	if err := os.Chown(state, builder.ProgramUID, builder.ProgramGID); err != nil && !errors.Is(err, os.ErrPermission) {
		return err
	}
	return os.Mkdir(filepath.Join(dir, "logs"), 0o700)
}
