package store

import (
	"context"
	"database/sql"
	"time"

	"github.com/hershyorg/hershy/internal/stats"
)

// ProgramSample is one sample of a program's resource history, in one of
// its two series.
type ProgramSample struct {
	ProgramID  string
	Resolution stats.Resolution
	stats.Sample
}

// StatsBatch is what one sampling round writes: its samples, and, when
// set, the time before which each series' samples are dropped.
type StatsBatch struct {
	Samples []ProgramSample
	// PruneBefore drops, for every program, the samples of a resolution
	// older than its time (no entry: none of that resolution).
	PruneBefore map[stats.Resolution]time.Time
}

const statsCols = `at, cpu_percent, memory_bytes, memory_limit_bytes, pids, net_rx_bytes, net_tx_bytes,
	state_bytes_used, state_bytes_limit, restarts`

// SaveStats writes a round's samples and prunes, in one transaction. A
// sample of a program that no longer exists (deleted while it was read) is
// skipped; one at a time its series already holds replaces that row.
func (s *Store) SaveStats(ctx context.Context, b StatsBatch) error {
	for _, ps := range b.Samples {
		if ps.ProgramID == "" {
			return wrap("save stats", invalid("empty program id"))
		}
		if _, err := stats.ParseResolution(string(ps.Resolution)); err != nil {
			return wrap("save stats", invalid("%v", err))
		}
	}
	if len(b.Samples) == 0 && len(b.PruneBefore) == 0 {
		return nil
	}
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		if len(b.Samples) > 0 {
			// The program's existence is checked in the statement: a
			// foreign key failure would abort the whole round's batch.
			ins, err := tx.PrepareContext(ctx, `INSERT INTO program_stats (program_id, resolution, `+statsCols+`)
SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM programs WHERE program_id = ?)
ON CONFLICT (program_id, resolution, at) DO UPDATE SET
	cpu_percent = excluded.cpu_percent, memory_bytes = excluded.memory_bytes,
	memory_limit_bytes = excluded.memory_limit_bytes, pids = excluded.pids,
	net_rx_bytes = excluded.net_rx_bytes, net_tx_bytes = excluded.net_tx_bytes,
	state_bytes_used = excluded.state_bytes_used, state_bytes_limit = excluded.state_bytes_limit,
	restarts = excluded.restarts`)
			if err != nil {
				return err
			}
			defer ins.Close()
			for _, ps := range b.Samples {
				v := ps.Sample
				if _, err := ins.ExecContext(ctx, ps.ProgramID, string(ps.Resolution), toNanos(v.At), v.CPUPercent,
					v.MemoryBytes, v.MemoryLimitBytes, v.Pids, v.NetRxBytes, v.NetTxBytes,
					v.StateBytesUsed, v.StateBytesLimit, v.Restarts, ps.ProgramID); err != nil {
					return err
				}
			}
		}
		for r, before := range b.PruneBefore {
			// Per program, so each delete is a range of the key, not a
			// scan of every program's rows.
			if _, err := tx.ExecContext(ctx, `DELETE FROM program_stats
WHERE program_id IN (SELECT program_id FROM programs) AND resolution = ? AND at < ?`, string(r), toNanos(before)); err != nil {
				return err
			}
		}
		return nil
	})
	return wrap("save stats", err)
}

// ListStats returns a program's samples of resolution r from since on,
// oldest first. An unknown program has none.
func (s *Store) ListStats(ctx context.Context, programID string, r stats.Resolution, since time.Time) ([]stats.Sample, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+statsCols+` FROM program_stats
WHERE program_id = ? AND resolution = ? AND at >= ? ORDER BY at`, programID, string(r), toNanos(since))
	if err != nil {
		return nil, wrap("list stats "+programID, err)
	}
	defer rows.Close()
	out := []stats.Sample{}
	for rows.Next() {
		v, err := scanSample(rows)
		if err != nil {
			return nil, wrap("list stats "+programID, err)
		}
		out = append(out, v)
	}
	return out, wrap("list stats "+programID, rows.Err())
}

// UnfoldedStats returns, per program, the fine samples that no coarse
// sample sums up yet: those from the step after the program's latest
// coarse sample on (all its fine samples when it has none), oldest first.
// The Host folds them into its open coarse steps when it opens, so a step
// a restart cut in two is not lost.
func (s *Store) UnfoldedStats(ctx context.Context, coarseStep time.Duration) (map[string][]stats.Sample, error) {
	// Program by program: each program's latest coarse time is one seek,
	// and its fine samples after it one range of the key (not a seek per
	// fine row: a thousand programs keep 360,000).
	rows, err := s.r.QueryContext(ctx, `SELECT f.program_id, `+statsCols+` FROM programs p
JOIN program_stats f ON f.program_id = p.program_id AND f.resolution = ? AND f.at >= COALESCE(
	(SELECT MAX(c.at) FROM program_stats c WHERE c.program_id = p.program_id AND c.resolution = ?) + ?, 0)
ORDER BY f.program_id, f.at`, string(stats.Fine), string(stats.Coarse), coarseStep.Nanoseconds())
	if err != nil {
		return nil, wrap("unfolded stats", err)
	}
	defer rows.Close()
	out := map[string][]stats.Sample{}
	for rows.Next() {
		var id string
		v, err := scanSample(rows, &id)
		if err != nil {
			return nil, wrap("unfolded stats", err)
		}
		out[id] = append(out[id], v)
	}
	return out, wrap("unfolded stats", rows.Err())
}

// scanSample reads statsCols, after the given leading columns.
func scanSample(sc scanner, lead ...any) (stats.Sample, error) {
	var (
		v  stats.Sample
		at int64
	)
	dest := append(lead, &at, &v.CPUPercent, &v.MemoryBytes, &v.MemoryLimitBytes, &v.Pids,
		&v.NetRxBytes, &v.NetTxBytes, &v.StateBytesUsed, &v.StateBytesLimit, &v.Restarts)
	if err := sc.Scan(dest...); err != nil {
		return stats.Sample{}, err
	}
	v.At = fromNanos(at)
	return v, nil
}
