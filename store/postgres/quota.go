package postgres

import (
	"cmp"
	"context"
	"errors"
	"hash/fnv"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/meterplane/billing"
)

// QuotaConfig configures a Quota. The zero value works.
type QuotaConfig struct {
	// Owner names this replica's leases in the database. Defaults to a new random id. Two live
	// Quotas must never share one.
	Owner string

	// LeaseUnits is how many units beyond its own a reservation that goes to the database asks
	// for, so that the next reservations of the same tenant and resource are admitted in memory.
	// A grant never takes more than a quarter of the headroom left beyond the reservation, so
	// replicas near a limit lease one reservation at a time. Defaults to 64 times the
	// reservation's units; a negative value leases exactly what each reservation needs.
	LeaseUnits int64

	// LeaseTTL is how long a lease outlives a replica that stops renewing it: a Quota renews its
	// leases every LeaseTTL/3, and the units of a replica that died return to the others after
	// LeaseTTL. Defaults to 30 seconds.
	LeaseTTL time.Duration

	// IdleReturn is how long a lease may go unused before its spare units are returned to the
	// database for other replicas. Defaults to 2 seconds.
	IdleReturn time.Duration

	// Logger receives renewal failures. Defaults to slog.Default().
	Logger *slog.Logger
}

// Quota is a billing.Quota shared by every replica on one PostgreSQL database: a hard limit
// holds exactly across them. Each Quota leases blocks of a tenant's headroom from the database
// (under an advisory lock per tenant and resource) and admits reservations from its lease in
// memory, so most Reserve calls cost no round trip. The Store's AppendEvents lowers a lease by
// the units of each reservation it commits, in the same transaction that counts the event, so
// usage plus leases never count a unit twice or not at all. A replica that dies leaves leases
// that expire after LeaseTTL.
//
// Give each Meter its own Quota (billing.Config{Quota: q}); close the Meter, then the Quota, then
// the Store. Safe for concurrent use.
type Quota struct {
	s    *Store
	cfg  QuotaConfig
	keys sync.Map // billing.RateKey -> *qkey

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

var _ billing.Quota = (*Quota)(nil)

// qkey is the state of one tenant and resource in one Quota.
type qkey struct {
	key billing.RateKey
	pg  sync.Mutex // one database trip at a time per key

	mu      sync.Mutex
	granted int64 // units of our lease: what our row holds after our committed transactions
	held    int64 // units of open and settling holds taken from the lease
	free    int64 // units of holds that need no lease (no hard rule, or enforcement off)
	holds   map[string]*qhold
	fifo    []*qhold  // holds in creation order (one TTL, so expiry order)
	valid   time.Time // wall clock until which the lease may be used without asking the database
	lastUse time.Time // wall clock of the last hold taken from the lease
	// The rules the lease was last checked under: the slices' identity (cheap, while the
	// Meter's rule cache is current) and their content.
	rulesP   *billing.QuotaRule
	bucketsP *billing.Span
	nrules   int
	sig      string
}

// qhold is one reservation held by a Quota.
type qhold struct {
	id       string
	n        int64
	expires  time.Time
	leased   bool // taken from the lease
	settling bool // claimed by an append transaction in flight
	released bool // released while settling: drop it if the append does not commit
}

// NewQuota returns a Quota on s, and starts the goroutine that renews and returns its leases.
func NewQuota(s *Store, cfg QuotaConfig) (*Quota, error) {
	if cfg.LeaseTTL < 0 || cfg.IdleReturn < 0 {
		return nil, errors.New("postgres: QuotaConfig.LeaseTTL and IdleReturn must not be negative; use 0 for the defaults")
	}
	if cfg.Owner == "" {
		cfg.Owner = billing.NewEventID()
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = 30 * time.Second
	}
	if cfg.IdleReturn == 0 {
		cfg.IdleReturn = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	q := &Quota{s: s, cfg: cfg, stop: make(chan struct{}), done: make(chan struct{})}
	s.leases.add(q)
	go q.maintain()
	return q, nil
}

// Owner returns the id under which this Quota's leases are stored.
func (q *Quota) Owner() string { return q.cfg.Owner }

// Close stops renewing leases and returns them all to the database. Close the Meter that uses
// the Quota first. Close is idempotent.
func (q *Quota) Close() error {
	var err error
	q.closeOnce.Do(func() {
		close(q.stop)
		<-q.done
		q.s.leases.remove(q)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = q.s.pool.Exec(ctx, `DELETE FROM quota_leases WHERE owner = $1`, q.cfg.Owner)
		err = translate("return quota leases", err)
	})
	return err
}

func (q *Quota) lookup(k billing.RateKey) *qkey {
	if v, ok := q.keys.Load(k); ok {
		return v.(*qkey)
	}
	return nil
}

func (q *Quota) keyOf(k billing.RateKey) *qkey {
	if c := q.lookup(k); c != nil {
		return c
	}
	v, _ := q.keys.LoadOrStore(k, &qkey{key: k, holds: make(map[string]*qhold)})
	return v.(*qkey)
}

// Reserve implements billing.Quota.
func (q *Quota) Reserve(ctx context.Context, req billing.QuotaRequest) error {
	k := q.keyOf(req.Key)
	hard := req.Enforce && hasHard(req.Rules)
	k.mu.Lock()
	k.expire(req.Now)
	if _, dup := k.holds[req.ID]; dup || !hard {
		if !dup {
			k.add(&req, false)
		}
		k.mu.Unlock()
		return nil
	}
	if k.granted-k.held >= req.N && k.usable(&req) {
		k.add(&req, true)
		k.mu.Unlock()
		return nil
	}
	k.mu.Unlock()

	// The lease is short: ask the database, one trip per key at a time.
	k.pg.Lock()
	defer k.pg.Unlock()
	k.mu.Lock()
	k.expire(req.Now)
	if k.granted-k.held >= req.N && k.usable(&req) {
		k.add(&req, true) // another goroutine's trip brought enough
		k.mu.Unlock()
		return nil
	}
	// Take the lease's spare units out of use: the trip either grows the lease from them or
	// returns them.
	spare := max(k.granted-k.held, 0)
	k.granted -= spare
	held := k.held
	k.mu.Unlock()
	return q.acquire(ctx, k, &req, spare, held)
}

// acquire grows k's lease so that req fits, or refuses req, in one transaction under the key's
// advisory lock. spare is the part of the lease taken out of use by the caller, held the units
// of k's leased holds.
func (q *Quota) acquire(ctx context.Context, k *qkey, req *billing.QuotaRequest, spare, held int64) error {
	restore := func() {
		k.mu.Lock()
		k.granted += spare
		k.mu.Unlock()
	}
	start := time.Now()
	hard, periods, starts, ends := hardBuckets(req)
	limits := make([]int64, len(hard))
	for j, i := range hard {
		limits[j] = req.Rules[i].Limit
	}
	extra := q.cfg.LeaseUnits
	if extra == 0 {
		extra = 64 * req.N
	}
	var grant, leased int64
	var used []int64
	var bind int
	err := q.s.pool.QueryRow(ctx, `SELECT granted, used, bind, leased FROM quota_lease($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
		q.s.quotaLockKey(req.Key), req.Key.Tenant, req.Key.Resource, q.cfg.Owner, periods, starts, ends, limits,
		req.N, max(extra, 0), spare, held, q.cfg.LeaseTTL).Scan(&grant, &used, &bind, &leased)
	if err != nil {
		restore()
		return translate("lease quota", err)
	}
	if grant == 0 {
		j := bind - 1
		rule := req.Rules[hard[j]]
		rule.Tenant = req.Key.Tenant
		k.mu.Lock()
		k.setRules(req)
		k.mu.Unlock()
		return &billing.QuotaExceededError{Rule: rule, Used: used[j], Reserved: leased, Requested: req.N,
			Limit: rule.Limit, ResetAt: req.Buckets[hard[j]].End}
	}
	ttl := q.cfg.LeaseTTL
	k.mu.Lock()
	k.granted += grant
	k.valid = start.Add(ttl - ttl/4)
	k.setRules(req)
	k.add(req, true)
	k.mu.Unlock()
	return nil
}

// countsSQL reads, in one snapshot, the usage of each listed bucket ($3 periods, $4 starts, $5
// ends) and the units that owners other than $6 reported held.
const countsSQL = `SELECT quota_used($1, $2, $3, $4, $5),
	(SELECT COALESCE(sum(held), 0)::bigint FROM quota_leases
		WHERE tenant = $1 AND resource = $2 AND owner <> $6 AND expires > now())`

// Release implements billing.Quota.
func (q *Quota) Release(ctx context.Context, key billing.RateKey, id string) error {
	k := q.lookup(key)
	if k == nil {
		return nil
	}
	k.mu.Lock()
	if h := k.holds[id]; h != nil {
		if h.settling {
			h.released = true
		} else {
			k.drop(h)
		}
	}
	k.mu.Unlock()
	return nil
}

// Counts implements billing.Quota: usage from the rollups, and the units held by this Quota's
// open reservations plus those held by other replicas' (as of their last lease change or
// renewal: a cancelled reservation of another replica shows until its next renewal).
func (q *Quota) Counts(ctx context.Context, req billing.QuotaRequest) ([]int64, int64, error) {
	all := make([]int, len(req.Rules))
	for i := range all {
		all[i] = i
	}
	periods, starts, ends := bucketArgs(req, all)
	var used []int64
	var othersHeld int64
	if err := q.s.pool.QueryRow(ctx, countsSQL, req.Key.Tenant, req.Key.Resource, periods, starts, ends, q.cfg.Owner).
		Scan(&used, &othersHeld); err != nil {
		return nil, 0, translate("read quota", err)
	}
	var reserved int64
	if k := q.lookup(req.Key); k != nil {
		k.mu.Lock()
		k.expire(req.Now)
		reserved = k.held + k.free
		k.mu.Unlock()
	}
	return used, reserved + othersHeld, nil
}

// hasHard reports whether any rule is hard.
func hasHard(rules []billing.QuotaRule) bool {
	for i := range rules {
		if rules[i].Hard {
			return true
		}
	}
	return false
}

// hardBuckets returns the indexes of req's hard rules and the query arguments of their buckets.
func hardBuckets(req *billing.QuotaRequest) (hard []int, periods []string, starts, ends []time.Time) {
	for i := range req.Rules {
		if req.Rules[i].Hard {
			hard = append(hard, i)
		}
	}
	periods, starts, ends = bucketArgs(*req, hard)
	return hard, periods, starts, ends
}

// bucketArgs returns, for the listed rules, the rollup period and bucket-start range that sum to
// the usage of the rule's current bucket: the one bucket of its period, the day buckets of a
// month cycle anchored on another day than the 1st, or every month bucket for the total.
func bucketArgs(req billing.QuotaRequest, which []int) (periods []string, starts, ends []time.Time) {
	for _, i := range which {
		p, b := req.Rules[i].Period, req.Buckets[i]
		switch {
		case p == billing.PeriodTotal:
			// Totals are not stored: every month bucket adds up to it.
			p, b = billing.PeriodMonth, billing.Span{Start: time.Time{}, End: time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)}
		case p == billing.PeriodMonth && b.Start.Day() != 1:
			p = billing.PeriodDay // an anchored cycle is a run of whole days
		}
		periods = append(periods, string(p))
		starts = append(starts, b.Start.UTC())
		ends = append(ends, b.End.UTC())
	}
	return periods, starts, ends
}

// quotaLockKey is the advisory lock key of one tenant and resource.
func (s *Store) quotaLockKey(k billing.RateKey) int64 {
	h := fnv.New32a()
	h.Write([]byte(k.Tenant))
	h.Write([]byte{0})
	h.Write([]byte(k.Resource))
	return s.lockKey(lockQuota) + int64(h.Sum32()&0xfff)
}

// usable reports whether the lease may serve req without asking the database: it is live and
// was checked under the same rules and buckets. k.mu must be held.
func (k *qkey) usable(req *billing.QuotaRequest) bool {
	if len(req.Rules) == 0 || !time.Now().Before(k.valid) {
		return false
	}
	if len(req.Rules) == k.nrules && &req.Rules[0] == k.rulesP && &req.Buckets[0] == k.bucketsP {
		return true
	}
	if rulesSig(req) != k.sig {
		return false
	}
	k.rulesP, k.bucketsP = &req.Rules[0], &req.Buckets[0]
	return true
}

// setRules records the rules the lease was checked under. k.mu must be held.
func (k *qkey) setRules(req *billing.QuotaRequest) {
	k.nrules = len(req.Rules)
	if k.nrules > 0 {
		k.rulesP, k.bucketsP = &req.Rules[0], &req.Buckets[0]
	}
	k.sig = rulesSig(req)
}

// rulesSig is the content of req's hard rules and buckets that a lease depends on.
func rulesSig(req *billing.QuotaRequest) string {
	b := make([]byte, 0, 64)
	for i, r := range req.Rules {
		if !r.Hard {
			continue
		}
		b = append(b, r.Period...)
		b = append(b, ':')
		b = strconv.AppendInt(b, r.Limit, 10)
		b = append(b, ':')
		b = strconv.AppendInt(b, req.Buckets[i].Start.UnixNano(), 10)
		b = append(b, ';')
	}
	return string(b)
}

// add holds req.N units under req.ID. k.mu must be held.
func (k *qkey) add(req *billing.QuotaRequest, leased bool) {
	h := &qhold{id: req.ID, n: req.N, expires: req.Expires, leased: leased}
	k.holds[req.ID] = h
	k.fifo = append(k.fifo, h)
	if leased {
		k.held += h.n
		k.lastUse = time.Now()
	} else {
		k.free += h.n
	}
}

// drop releases hold h. k.mu must be held.
func (k *qkey) drop(h *qhold) {
	delete(k.holds, h.id)
	if h.leased {
		k.held -= h.n
	} else {
		k.free -= h.n
	}
}

// expire releases the holds whose TTL has passed, except those an append is settling. k.mu
// must be held.
func (k *qkey) expire(now time.Time) {
	i := 0
	for ; i < len(k.fifo) && !now.Before(k.fifo[i].expires); i++ {
		h := k.fifo[i]
		if cur := k.holds[h.id]; cur == h {
			if h.settling {
				h.released = true
			} else {
				k.drop(h)
			}
		}
		k.fifo[i] = nil
	}
	if i > 0 {
		k.fifo = k.fifo[i:]
	}
	if len(k.fifo) > 64 && len(k.fifo) > 4*len(k.holds) {
		kept := make([]*qhold, 0, len(k.holds))
		for _, h := range k.fifo {
			if k.holds[h.id] == h {
				kept = append(kept, h)
			}
		}
		k.fifo = kept
	}
}

// maintain renews live leases every LeaseTTL/3 and returns idle ones, until Close.
func (q *Quota) maintain() {
	defer close(q.done)
	every := min(q.cfg.LeaseTTL/3, q.cfg.IdleReturn/2)
	tick := time.NewTicker(every)
	defer tick.Stop()
	lastRenew := time.Now()
	for {
		select {
		case <-q.stop:
			return
		case <-tick.C:
		}
		q.returnIdle()
		if time.Since(lastRenew) >= q.cfg.LeaseTTL/3 {
			lastRenew = time.Now()
			if err := q.renew(); err != nil {
				q.cfg.Logger.Warn("billing/postgres: cannot renew quota leases; they expire unless a later renewal succeeds",
					"owner", q.cfg.Owner, "err", err)
			}
		}
	}
}

// renew extends every live lease of this Quota and reports its held units. A lease that expired
// meanwhile is not revived (other replicas may have been granted its units): its key asks the
// database again at its next reservation.
func (q *Quota) renew() error {
	var tenants, resources []string
	var held []int64
	q.keys.Range(func(_, v any) bool {
		k := v.(*qkey)
		k.mu.Lock()
		if k.granted > 0 {
			tenants = append(tenants, k.key.Tenant)
			resources = append(resources, k.key.Resource)
			held = append(held, k.held)
		}
		k.mu.Unlock()
		return true
	})
	if len(tenants) == 0 {
		return nil
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), q.cfg.LeaseTTL/3)
	defer cancel()
	rows, err := q.s.pool.Query(ctx, `UPDATE quota_leases l SET expires = now() + $5::interval, held = x.held
		FROM unnest($2::text[], $3::text[], $4::bigint[]) AS x(tenant, resource, held)
		WHERE l.owner = $1 AND l.tenant = x.tenant AND l.resource = x.resource AND l.expires > now()
		RETURNING l.tenant, l.resource`, q.cfg.Owner, tenants, resources, held, q.cfg.LeaseTTL)
	if err != nil {
		return translate("renew quota leases", err)
	}
	var renewed []billing.RateKey
	for rows.Next() {
		var k billing.RateKey
		if err := rows.Scan(&k.Tenant, &k.Resource); err != nil {
			rows.Close()
			return translate("renew quota leases", err)
		}
		renewed = append(renewed, k)
	}
	if err := rows.Err(); err != nil {
		return translate("renew quota leases", err)
	}
	for _, rk := range renewed {
		if k := q.lookup(rk); k != nil {
			k.mu.Lock()
			k.valid = start.Add(q.cfg.LeaseTTL - q.cfg.LeaseTTL/4)
			k.mu.Unlock()
		}
	}
	return nil
}

// returnIdle gives back the spare units of leases unused for IdleReturn, so that other replicas
// can have them; a lease with no hold left is deleted.
func (q *Quota) returnIdle() {
	q.keys.Range(func(_, v any) bool {
		k := v.(*qkey)
		if !k.pg.TryLock() {
			return true // a reservation is asking the database for this key
		}
		defer k.pg.Unlock()
		k.mu.Lock()
		spare := k.granted - k.held
		if spare <= 0 || time.Since(k.lastUse) < q.cfg.IdleReturn {
			k.mu.Unlock()
			return true
		}
		k.granted -= spare
		empty := k.granted == 0 && k.held == 0
		k.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var err error
		if empty {
			// No hold is open, so no append will lower this lease: it can go.
			_, err = q.s.pool.Exec(ctx, `DELETE FROM quota_leases WHERE tenant = $1 AND resource = $2 AND owner = $3`,
				k.key.Tenant, k.key.Resource, q.cfg.Owner)
		} else {
			_, err = q.s.pool.Exec(ctx, `UPDATE quota_leases SET units = units - $4 WHERE tenant = $1 AND resource = $2 AND owner = $3`,
				k.key.Tenant, k.key.Resource, q.cfg.Owner, spare)
		}
		if err != nil {
			k.mu.Lock()
			k.granted += spare
			k.mu.Unlock()
			q.cfg.Logger.Warn("billing/postgres: cannot return idle quota lease", "tenant", k.key.Tenant,
				"resource", k.key.Resource, "err", err)
		}
		return true
	})
}

// holdsLeased reports whether claimLeased would claim the hold id of key.
func (q *Quota) holdsLeased(key billing.RateKey, id string) bool {
	k := q.lookup(key)
	if k == nil {
		return false
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.holds[id].claimable()
}

// claimable reports whether h is an open hold taken from the lease that no append is settling.
func (h *qhold) claimable() bool { return h != nil && !h.settling && h.leased && !h.released }

// claimLeased marks the leased hold id of key as settling, for an append transaction that counts
// its event, and returns it (nil when there is none).
func (q *Quota) claimLeased(key billing.RateKey, id string) (*qkey, *qhold) {
	k := q.lookup(key)
	if k == nil {
		return nil, nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	h := k.holds[id]
	if !h.claimable() {
		return nil, nil
	}
	h.settling = true
	return k, h
}

// settled ends the settling of h: when the append committed, the hold and its units of the
// lease are gone (the database lowered the lease in that transaction); otherwise the hold is
// open again, or released if it was released or expired meanwhile.
func (k *qkey) settled(h *qhold, committed bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	h.settling = false
	if committed {
		k.granted -= h.n
		k.drop(h)
		return
	}
	if h.released {
		k.drop(h)
	}
}

// leaseUpdateSQL lowers leases by the units of committed reservations.
const leaseUpdateSQL = `UPDATE quota_leases l SET units = l.units - x.n, held = GREATEST(l.held - x.n, 0)
	FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS x(tenant, resource, owner, n)
	WHERE l.tenant = x.tenant AND l.resource = x.resource AND l.owner = x.owner`

// applyClaims runs the lease updates of claims in tx.
func applyClaims(ctx context.Context, tx pgx.Tx, items []leaseClaim) error {
	type lk struct{ tenant, resource, owner string }
	sums := map[lk]int64{}
	var order []lk
	for _, c := range items {
		key := lk{c.k.key.Tenant, c.k.key.Resource, c.q.cfg.Owner}
		if _, ok := sums[key]; !ok {
			order = append(order, key)
		}
		sums[key] += c.h.n
	}
	// One lock order for every writer.
	slices.SortFunc(order, func(a, b lk) int {
		return cmp.Or(strings.Compare(a.tenant, b.tenant), strings.Compare(a.resource, b.resource),
			strings.Compare(a.owner, b.owner))
	})
	var tenants, resources, owners []string
	var ns []int64
	for _, key := range order {
		tenants = append(tenants, key.tenant)
		resources = append(resources, key.resource)
		owners = append(owners, key.owner)
		ns = append(ns, sums[key])
	}
	_, err := tx.Exec(ctx, leaseUpdateSQL, tenants, resources, owners, ns)
	return err
}
