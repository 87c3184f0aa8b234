package sqlite

import (
	"context"
	"errors"
	"fmt"

	"github.com/meterplane/billing"
)

// claimJobSQL inserts the claim, or replaces the job's row when it is claimable: the stored slot
// is earlier and finished, expired or ours, or it is the same slot, unfinished, and expired or
// ours. Anything else (a later slot, a finished slot, another owner's unexpired claim) leaves
// the row alone and changes nothing, which the caller reads as "not claimed". The writer
// connection is the only one of this process and SQLite serializes writers across processes,
// so the check and the write are one atomic step.
const claimJobSQL = `INSERT INTO jobs (name, slot, owner, until, finished) VALUES (?, ?, ?, ?, 0)
ON CONFLICT (name) DO UPDATE SET slot = excluded.slot, owner = excluded.owner, until = excluded.until, finished = 0
WHERE (jobs.slot < excluded.slot AND (jobs.finished = 1 OR jobs.owner = excluded.owner OR jobs.until <= ?))
   OR (jobs.slot = excluded.slot AND jobs.finished = 0 AND (jobs.owner = excluded.owner OR jobs.until <= ?))`

// ClaimJob implements billing.JobStore.
func (s *Store) ClaimJob(ctx context.Context, c billing.JobClaim) (bool, error) {
	if err := checkClaim(c); err != nil {
		return false, err
	}
	now := c.Now.UnixNano()
	res, err := s.w.ExecContext(ctx, claimJobSQL, c.Name, c.Slot.UnixNano(), c.Owner, c.Until.UnixNano(), now, now)
	if err != nil {
		return false, translate("claim job "+c.Name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, translate("claim job "+c.Name, err)
	}
	return n > 0, nil
}

// FinishJob implements billing.JobStore.
func (s *Store) FinishJob(ctx context.Context, c billing.JobClaim) error {
	if err := checkClaim(c); err != nil {
		return err
	}
	res, err := s.w.ExecContext(ctx, `UPDATE jobs SET finished = 1 WHERE name = ? AND slot = ? AND owner = ?`,
		c.Name, c.Slot.UnixNano(), c.Owner)
	if err != nil {
		return translate("finish job "+c.Name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return translate("finish job "+c.Name, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: job %q slot %s is not claimed by %q (the claim expired and another owner took it)",
			billing.ErrNotFound, c.Name, c.Slot.UTC().Format("2006-01-02T15:04:05.999999999Z"), c.Owner)
	}
	return nil
}

// checkClaim refuses a claim without a job name or owner.
func checkClaim(c billing.JobClaim) error {
	switch {
	case c.Name == "":
		return errors.New("sqlite: JobClaim.Name must not be empty")
	case c.Owner == "":
		return errors.New("sqlite: JobClaim.Owner must not be empty")
	}
	return nil
}
