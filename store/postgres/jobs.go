package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/meterplane/billing"
)

var _ billing.Maintainer = (*Store)(nil)

// claimJobSQL inserts the claim, or replaces the job's row when it is claimable: the stored slot
// is earlier and finished, expired or ours, or it is the same slot, unfinished, and expired or
// ours. Anything else (a later slot, a finished slot, another owner's unexpired claim) leaves the
// row alone and returns no row. Under concurrent claims ON CONFLICT locks the row and evaluates
// the WHERE clause on its latest committed version, so exactly one of them wins.
const claimJobSQL = `INSERT INTO jobs AS j (name, slot, owner, until, finished) VALUES ($1, $2, $3, $4, false)
ON CONFLICT (name) DO UPDATE SET slot = excluded.slot, owner = excluded.owner, until = excluded.until, finished = false
WHERE (j.slot < excluded.slot AND (j.finished OR j.owner = excluded.owner OR j.until <= $5))
   OR (j.slot = excluded.slot AND NOT j.finished AND (j.owner = excluded.owner OR j.until <= $5))
RETURNING true`

// ClaimJob implements billing.JobStore.
func (s *Store) ClaimJob(ctx context.Context, c billing.JobClaim) (bool, error) {
	if err := checkClaim(c); err != nil {
		return false, err
	}
	var ok bool
	err := s.pool.QueryRow(ctx, claimJobSQL, c.Name, c.Slot.UTC(), c.Owner, c.Until.UTC(), c.Now.UTC()).Scan(&ok)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, translate("claim job "+c.Name, err)
	}
	return ok, nil
}

// FinishJob implements billing.JobStore.
func (s *Store) FinishJob(ctx context.Context, c billing.JobClaim) error {
	if err := checkClaim(c); err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `UPDATE jobs SET finished = true WHERE name = $1 AND slot = $2 AND owner = $3`,
		c.Name, c.Slot.UTC(), c.Owner)
	if err != nil {
		return translate("finish job "+c.Name, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: job %q slot %s is not claimed by %q (the claim expired and another owner took it)",
			billing.ErrNotFound, c.Name, c.Slot.UTC().Format(time.RFC3339Nano), c.Owner)
	}
	return nil
}

// Maintain implements billing.Maintainer: it creates the monthly event partitions of the
// current month and the next Config.PartitionsAhead months that do not exist yet, so that
// appends never wait for one. The Meter.Run of one replica calls it once per maintenance
// interval; now is ignored in favour of Config.Now, which decides the months.
func (s *Store) Maintain(ctx context.Context, now time.Time) error {
	return s.ensurePartitionsAhead(ctx)
}

// checkClaim refuses a claim without a job name or owner.
func checkClaim(c billing.JobClaim) error {
	switch {
	case c.Name == "":
		return errors.New("postgres: JobClaim.Name must not be empty")
	case c.Owner == "":
		return errors.New("postgres: JobClaim.Owner must not be empty")
	}
	return nil
}
