package billing

import (
	"context"
	"hash/maphash"
	"math/bits"
	"reflect"
	"sync"
	"time"
	"unsafe"
)

// LocalLimiterConfig configures a LocalLimiter. The zero value works: every field documents its
// default.
type LocalLimiterConfig struct {
	// Now returns the current time. Defaults to time.Now. Times that carry a monotonic clock
	// reading (those of time.Now) are compared through it, so steps of the wall clock change
	// nothing; tests set Now to fixed instants. A clock that goes backwards never grants extra
	// units: keys are only charged more until it catches up.
	Now func() time.Time

	// Shards is how many independently locked parts the counters are split into, by a hash of the
	// key, so that concurrent calls for different keys rarely wait for each other. Rounded up to a
	// power of two, at most 65536; zero or negative means 256.
	Shards int

	// SweepInterval is how often each shard drops its idle keys. A key is idle once its
	// theoretical arrival time is in the past: it then behaves exactly like a key never seen, so
	// dropping it changes no decision. Each shard sweeps lazily, during the first call that reaches
	// it after the interval, under its own lock only; a shard whose table has emptied a lot is
	// rebuilt smaller, so memory is given back. Zero or negative means 10 seconds. See also
	// LocalLimiter.Sweep.
	SweepInterval time.Duration
}

// Defaults of LocalLimiterConfig.
const (
	DefaultLimiterShards        = 256
	DefaultLimiterSweepInterval = 10 * time.Second
)

// LocalLimiter is the built-in, in-process Limiter: GCRA counters in memory, one per RateKey,
// exact for one process. Give every replica of a service the same shared limiter (store/redis)
// instead when it runs on several.
//
// A counter is a single int64, the key's theoretical arrival time (TAT) in nanoseconds. Counters
// live in shards, each under its own mutex, chosen by a 64-bit hash of the key that also indexes
// the counter inside its shard; idle counters are dropped by periodic per-shard sweeps, so memory
// follows the number of recently active keys, not the number of tenants ever seen.
//
// Create one with NewLocalLimiter; the zero value is not usable. Safe for concurrent use. Its
// methods never block on anything but a shard's lock and ignore their context.
type LocalLimiter struct {
	now        func() time.Time // nil: the monotonic clock through base
	base       time.Time        // when the limiter was made, with a monotonic reading
	baseNs     int64            // base in Unix nanoseconds
	sweepEvery int64
	seed       maphash.Seed
	mask       uint64
	shards     []localShard
}

// localShard is one lock and the counters it guards, padded to its own cache lines.
type localShard struct {
	localShardState
	_ [128 - unsafe.Sizeof(localShardState{})%128]byte
}

// localShardState holds a shard's counters in an open-addressing hash table with linear probing,
// indexed by the key's 64-bit hash (computed once per call, for the shard too): a call hashes the
// key's strings once, and usually finds its counter in the first slot it reads, where it updates
// it in place. Keys with equal hashes are told apart by the key stored in the slot.
type localShardState struct {
	mu    sync.Mutex
	slots []localEntry // nil or a power of two long; a zero key marks an empty slot
	shift uint8        // 64 - log2(len(slots)): a hash's home slot is its top bits, mixed
	live  int          // slots in use
	// floor is the latest TAT of a key a sweep dropped (sweeps drop keys whose TAT has passed), so
	// a key not held is treated as having TAT floor. That changes nothing while the clock moves
	// forward, and keeps a dropped key from coming back fresh when the clock goes backwards.
	floor     int64
	nextSweep int64
}

// localEntry is one key's counter.
type localEntry struct {
	key  RateKey
	hash uint64
	tat  int64 // theoretical arrival time, Unix ns
}

// The table grows (doubling) before more than 7/8 of its slots are in use, and a sweep that
// leaves less than 1/8 in use rebuilds it at about half full, so memory is given back.
const minSlots = 8

var _ Limiter = (*LocalLimiter)(nil)

// NewLocalLimiter returns an empty LocalLimiter configured by cfg, after filling its defaults.
func NewLocalLimiter(cfg LocalLimiterConfig) *LocalLimiter {
	shards := cfg.Shards
	if shards <= 0 {
		shards = DefaultLimiterShards
	}
	shards = min(shards, 1<<16)
	n := 1
	for n < shards {
		n <<= 1
	}
	if cfg.SweepInterval <= 0 {
		cfg.SweepInterval = DefaultLimiterSweepInterval
	}
	if cfg.Now != nil && reflect.ValueOf(cfg.Now).Pointer() == reflect.ValueOf(time.Now).Pointer() {
		cfg.Now = nil // the same clock, read more cheaply: monotonic only (time.Since)
	}
	base := time.Now()
	l := &LocalLimiter{
		now:        cfg.Now,
		base:       base,
		baseNs:     base.UnixNano(),
		sweepEvery: int64(cfg.SweepInterval),
		seed:       maphash.MakeSeed(),
		mask:       uint64(n - 1),
		shards:     make([]localShard, n),
	}
	return l
}

// nanotime returns the current time in Unix nanoseconds. Differences from base go through the
// monotonic clock when the time has a monotonic reading, and through the wall clock otherwise.
func (l *LocalLimiter) nanotime() int64 {
	if l.now == nil {
		return l.baseNs + int64(time.Since(l.base))
	}
	return l.baseNs + int64(l.now().Sub(l.base))
}

// shard returns key's shard and its hash.
func (l *LocalLimiter) shard(key RateKey) (*localShard, uint64) {
	h := maphash.String(l.seed, key.Tenant) ^ maphash.String(l.seed, key.Resource)*0x9e3779b97f4a7c15
	return &l.shards[h&l.mask], h
}

// Allow admits n units for key under p, or refuses them without counting anything; see
// Limiter.Allow.
func (l *LocalLimiter) Allow(_ context.Context, key RateKey, p RatePolicy, n int64) (Decision, error) {
	t, tau, err := CheckRateRequest(key, p, n)
	if err != nil {
		return Decision{}, err
	}
	now := l.nanotime()
	sh, h := l.shard(key)
	sh.mu.Lock()
	if now >= sh.nextSweep {
		sh.sweep(now, l.sweepEvery)
	}
	i := sh.find(h, key)
	tat := sh.floor
	if i >= 0 {
		tat = sh.slots[i].tat
	}
	ahead := max(tat-now, 0) // how far the key is charged into the future
	cost := n * t            // n <= burst, so cost <= tau <= MaxBurstRefill: no overflow
	if n <= p.EffectiveBurst() && ahead <= tau-cost {
		ahead += cost
		if i >= 0 {
			sh.slots[i].tat = now + ahead
		} else {
			sh.insert(h, key, now+ahead)
		}
		sh.mu.Unlock()
		return Decision{Allowed: true, Limit: p.Limit, Remaining: (tau - ahead) / t,
			ResetAfter: time.Duration(ahead), Policy: p}, nil
	}
	sh.mu.Unlock()
	d := Decision{Limit: p.Limit, Remaining: max(tau-ahead, 0) / t, ResetAfter: time.Duration(ahead), Policy: p}
	if n > p.EffectiveBurst() {
		return d, ExceedsBurst(key, p, n)
	}
	d.RetryAfter = time.Duration(ahead - (tau - cost))
	return d, nil
}

// Peek reports the state of key under p without counting anything; see Limiter.Peek.
func (l *LocalLimiter) Peek(_ context.Context, key RateKey, p RatePolicy) (Decision, error) {
	t, tau, err := CheckRateRequest(key, p, 1)
	if err != nil {
		return Decision{}, err
	}
	now := l.nanotime()
	sh, h := l.shard(key)
	sh.mu.Lock()
	tat := sh.floor
	if i := sh.find(h, key); i >= 0 {
		tat = sh.slots[i].tat
	}
	sh.mu.Unlock()
	ahead := max(tat-now, 0)
	d := Decision{Limit: p.Limit, Remaining: max(tau-ahead, 0) / t, ResetAfter: time.Duration(ahead), Policy: p}
	d.Allowed = ahead <= tau-t
	if !d.Allowed {
		d.RetryAfter = time.Duration(ahead - (tau - t))
	}
	return d, nil
}

// Reset forgets key's counter, giving it a full burst again (unless the clock has gone backwards
// since the key's shard last swept: see LocalLimiterConfig.Now).
func (l *LocalLimiter) Reset(_ context.Context, key RateKey) error {
	if _, _, err := CheckRateRequest(key, RatePolicy{Limit: 1, Window: 1}, 1); err != nil {
		return err
	}
	sh, h := l.shard(key)
	sh.mu.Lock()
	if i := sh.find(h, key); i >= 0 {
		sh.remove(i)
	}
	sh.mu.Unlock()
	return nil
}

// Sweep drops the idle keys of every shard now, one shard at a time, and shrinks the tables that
// emptied a lot. Calls to the limiter sweep lazily anyway (see LocalLimiterConfig.SweepInterval);
// call Sweep from a ticker to give memory back promptly when traffic stops altogether.
func (l *LocalLimiter) Sweep() {
	now := l.nanotime()
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		sh.sweep(now, l.sweepEvery)
		sh.mu.Unlock()
	}
}

// Len returns how many keys the limiter holds: those not yet dropped by a sweep. Keys whose
// counter is idle may still be counted until their shard sweeps.
func (l *LocalLimiter) Len() int {
	n := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		n += sh.live
		sh.mu.Unlock()
	}
	return n
}

// home returns the slot where a key with hash h starts its probe. The shard was chosen by the
// hash's low bits, so the slot comes from its top bits after mixing.
func (s *localShard) home(h uint64) int {
	return int((h * 0x9e3779b97f4a7c15) >> s.shift)
}

// find returns the slot of key (whose hash is h), or -1. The caller holds s.mu.
func (s *localShard) find(h uint64, key RateKey) int {
	if s.live == 0 {
		return -1
	}
	mask := len(s.slots) - 1
	for i := s.home(h); ; i = (i + 1) & mask {
		e := &s.slots[i]
		if e.key.Tenant == "" {
			return -1
		}
		if e.hash == h && e.key == key {
			return i
		}
	}
}

// insert adds key, which s does not hold, with its hash h and TAT. The caller holds s.mu.
func (s *localShard) insert(h uint64, key RateKey, tat int64) {
	if (s.live+1)*8 > len(s.slots)*7 {
		s.resize(max(minSlots, 2*len(s.slots)))
	}
	s.place(localEntry{key: key, hash: h, tat: tat})
	s.live++
}

// place puts e in the first empty slot of its probe sequence.
func (s *localShard) place(e localEntry) {
	mask := len(s.slots) - 1
	i := s.home(e.hash)
	for s.slots[i].key.Tenant != "" {
		i = (i + 1) & mask
	}
	s.slots[i] = e
}

// resize moves the entries into a new table of n slots (a power of two; 0 frees the table).
func (s *localShard) resize(n int) {
	old := s.slots
	s.slots = nil
	if n > 0 {
		s.slots = make([]localEntry, n)
		s.shift = uint8(64 - bits.TrailingZeros(uint(n)))
	}
	for i := range old {
		if old[i].key.Tenant != "" {
			s.place(old[i])
		}
	}
}

// remove empties slot i, then shifts back the entries after it in the same run of full slots
// that may now sit nearer their home slot, so every probe still finds its key (deletion without
// tombstones). The caller holds s.mu.
func (s *localShard) remove(i int) {
	mask := len(s.slots) - 1
	for {
		s.slots[i] = localEntry{}
		j := i
		for {
			j = (j + 1) & mask
			e := &s.slots[j]
			if e.key.Tenant == "" {
				s.live--
				return
			}
			// e must stay when its home lies cyclically in (i, j]: its probe never passes i.
			k := s.home(e.hash)
			if j > i && (k <= i || k > j) || j < i && k <= i && k > j {
				s.slots[i] = *e
				i = j
				break
			}
		}
	}
}

// sweep drops the keys whose TAT is not after now, and rebuilds the table when it has emptied a
// lot. The caller holds s.mu.
func (s *localShard) sweep(now, every int64) {
	s.nextSweep = now + every
	for i := 0; i < len(s.slots); {
		if e := &s.slots[i]; e.key.Tenant != "" && e.tat <= now {
			s.floor = max(s.floor, e.tat)
			s.remove(i) // may shift a later entry into i: look at i again
			continue
		}
		i++
	}
	if len(s.slots) > minSlots && s.live*8 < len(s.slots) {
		n := 0
		if s.live > 0 {
			n = minSlots
			for n < 2*s.live {
				n <<= 1
			}
		}
		s.resize(n)
	}
}
