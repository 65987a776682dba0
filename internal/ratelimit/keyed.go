// Package ratelimit slows clients down before they cost anything: token
// buckets per key (client address, user, login target) in bounded memory,
// the client's address behind trusted proxies, and the HTTP middleware the
// API wraps around its routes.
package ratelimit

import (
	"container/list"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Keyed is a set of token buckets, one per key, holding at most Max keys.
//
// Memory is bounded whatever clients send: a key unseen for Idle is
// forgotten (its bucket would be full again, so forgetting it changes
// nothing), and when Max keys are held the least recently seen one goes.
// An attacker who rotates keys (addresses, e-mail addresses) therefore
// only pushes out other keys; it never grows the map.
type Keyed struct {
	limit   rate.Limit
	burst   int
	max     int
	idle    time.Duration
	penalty time.Duration // first growing delay; doubles per further failure
	maxWait time.Duration // longest growing delay
	now     func() time.Time

	mu      sync.Mutex
	entries map[string]*list.Element
	lru     *list.List // front: most recently seen
	evicted uint64
}

type entry struct {
	key      string
	lim      *rate.Limiter
	seen     time.Time
	failures int
	blocked  time.Time // refused until then (growing delay)
}

// KeyedOptions configure a Keyed. PerMinute and Max are required.
type KeyedOptions struct {
	// PerMinute is the sustained rate; the burst is as large, so a client
	// may spend a whole minute's allowance at once (a dashboard loading).
	PerMinute int
	// Max bounds the keys held.
	Max int
	// MaxPenalty, when positive, turns on growing delays: from the
	// PerMinute-th consecutive failure on (see Fail), each failure doubles
	// the wait before the key may try again, up to MaxPenalty.
	MaxPenalty time.Duration
	// Now replaces time.Now (tests).
	Now func() time.Time
}

// NewKeyed returns an empty set of buckets.
func NewKeyed(o KeyedOptions) *Keyed {
	if o.PerMinute <= 0 || o.Max <= 0 {
		panic("ratelimit: NewKeyed needs a positive PerMinute and Max")
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	refill := time.Minute // a full bucket's worth of tokens comes back in a minute
	k := &Keyed{
		limit:   rate.Limit(float64(o.PerMinute) / 60),
		burst:   o.PerMinute,
		max:     o.Max,
		idle:    refill + o.MaxPenalty,
		maxWait: o.MaxPenalty,
		penalty: time.Minute / time.Duration(o.PerMinute),
		now:     now,
		entries: make(map[string]*list.Element),
		lru:     list.New(),
	}
	return k
}

// get returns key's entry, created when missing, marked as seen now.
// k.mu is held.
func (k *Keyed) get(key string, now time.Time) *entry {
	if el, ok := k.entries[key]; ok {
		e := el.Value.(*entry)
		e.seen = now
		k.lru.MoveToFront(el)
		return e
	}
	k.sweep(now)
	for k.lru.Len() >= k.max {
		k.remove(k.lru.Back())
	}
	e := &entry{key: key, lim: rate.NewLimiter(k.limit, k.burst), seen: now}
	k.entries[key] = k.lru.PushFront(e)
	return e
}

// sweep forgets the keys idle for k.idle, oldest first. Each call does work
// in proportion to what it removes, so a flood of new keys stays O(1) each.
func (k *Keyed) sweep(now time.Time) {
	for el := k.lru.Back(); el != nil; el = k.lru.Back() {
		e := el.Value.(*entry)
		if now.Sub(e.seen) < k.idle || now.Before(e.blocked) {
			return
		}
		k.remove(el)
	}
}

func (k *Keyed) remove(el *list.Element) {
	delete(k.entries, el.Value.(*entry).key)
	k.lru.Remove(el)
	k.evicted++
}

// Allow takes a token of key's bucket. When there is none (or the key is
// serving a growing delay) it reports how long to wait and takes nothing.
func (k *Keyed) Allow(key string) (ok bool, retryAfter time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	e := k.get(key, now)
	if now.Before(e.blocked) {
		return false, e.blocked.Sub(now)
	}
	r := e.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// Fail records a failed attempt of key (a wrong password) and returns the
// growing delay it now serves (0 while within the burst). Without
// MaxPenalty it only counts.
func (k *Keyed) Fail(key string) time.Duration {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	e := k.get(key, now)
	e.failures++
	over := e.failures - k.burst
	if k.maxWait <= 0 || over <= 0 {
		return 0
	}
	wait := k.maxWait
	if over < 32 {
		wait = min(k.maxWait, k.penalty<<(over-1))
	}
	if wait <= 0 { // overflowed
		wait = k.maxWait
	}
	e.blocked = now.Add(wait)
	return wait
}

// Succeed forgets key's failures (a successful sign-in).
func (k *Keyed) Succeed(key string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if el, ok := k.entries[key]; ok {
		e := el.Value.(*entry)
		e.failures = 0
		e.blocked = time.Time{}
	}
}

// Failures reports key's consecutive failures.
func (k *Keyed) Failures(key string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	if el, ok := k.entries[key]; ok {
		return el.Value.(*entry).failures
	}
	return 0
}

// Len reports how many keys are held.
func (k *Keyed) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.lru.Len()
}

// Evicted reports how many keys were forgotten so far.
func (k *Keyed) Evicted() uint64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.evicted
}
