package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/hershyorg/hershy/internal/client"
)

// deployCLIFigure: `hershy deploy` of a source the Host has built before
// (a new program, no build): how long after the program is Ready the
// command returns. The user waits for the command, so the time it adds
// after Ready is what events instead of polling are for.
func (r *runner) deployCLIFigure(ctx context.Context, h *hostProc) error {
	t := newTracker(ctx, h.admin)
	defer t.close()
	if _, err := deployProgram(ctx, h, t, benchUser, 1, 0); err != nil { // the build, once
		return err
	}
	dir := filepath.Join(r.o.WorkDir, "deploy-src-"+r.rt)
	if err := writeFiles(dir, programSource(1)); err != nil {
		return err
	}
	var after []time.Duration
	for range r.o.Rounds {
		cmd := exec.CommandContext(ctx, r.o.Hershy, "deploy", dir, "--user", benchUser, "-o", "json")
		cmd.Env = append(os.Environ(), "HERSHY_URL="+h.url(), "HERSHY_TOKEN="+h.admin.Token,
			"HERSHY_CONFIG="+filepath.Join(r.o.WorkDir, "no-cli-config.json"))
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		returned := time.Now()
		if err != nil {
			return fmt.Errorf("hershy deploy: %w\n%s", err, stderr.String())
		}
		var p client.Program
		if err := json.Unmarshal(out, &p); err != nil || p.ProgramID == "" {
			return fmt.Errorf("hershy deploy printed no program (%v):\n%s", err, out)
		}
		id := p.ProgramID
		got, err := t.await(ctx, map[string]uint64{id: 0}, func(p *client.Program) bool { return p.State == "Ready" })
		if err != nil {
			return err
		}
		after = append(after, returned.Sub(got[id]))
	}
	m := median(after)
	r.rep.add(Figure{
		Name: "`hershy deploy` of a source built before: Ready → the command returns", Runtime: r.rt,
		Value: ms(m), Target: "≤ 100 ms", Met: m <= 100*time.Millisecond,
		Note: fmt.Sprintf("median of %d; max %s", len(after), ms(quantile(after, 1))),
	})
	return nil
}

// writeFiles writes a source tree into dir.
func writeFiles(dir string, files map[string]string) error {
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			return err
		}
	}
	return nil
}
