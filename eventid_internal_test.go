package billing

import (
	"testing"
	"time"
)

// setIDClock sets the id generator's last (millisecond, counter) pair.
func setIDClock(ms uint64, seq uint16) { idClock.Store(ms<<12 | uint64(seq)) }

func idParts(t *testing.T, id string) (ms uint64, seq uint16) {
	t.Helper()
	if len(id) != 36 {
		t.Fatalf("bad id %q", id)
	}
	hexv := func(s string) uint64 {
		var v uint64
		for _, c := range s {
			switch {
			case c >= '0' && c <= '9':
				v = v<<4 | uint64(c-'0')
			case c >= 'a' && c <= 'f':
				v = v<<4 | uint64(c-'a'+10)
			default:
				t.Fatalf("bad hex in %q", id)
			}
		}
		return v
	}
	ms = hexv(id[0:8] + id[9:13])
	if id[14] != '7' {
		t.Fatalf("id %q is not version 7", id)
	}
	return ms, uint16(hexv(id[15:18]))
}

// A wall clock that steps back does not make ids go back: they continue from the last one.
func TestEventIDClockStepsBack(t *testing.T) {
	ahead := uint64(time.Now().Add(time.Minute).UnixMilli()) // as if the clock had been a minute fast
	setIDClock(ahead, 5)
	defer setIDClock(0, 0)
	ms, seq := idParts(t, NewEventID())
	if ms != ahead || seq != 6 {
		t.Errorf("after the clock stepped back: (%d, %d), want (%d, 6)", ms, seq, ahead)
	}
}

// When the 12-bit counter of one millisecond is used up, ids borrow the next millisecond.
func TestEventIDCounterExhausted(t *testing.T) {
	ahead := uint64(time.Now().Add(time.Minute).UnixMilli())
	setIDClock(ahead, 0x0ffe)
	defer setIDClock(0, 0)
	a, b := NewEventID(), NewEventID()
	if ms, seq := idParts(t, a); ms != ahead || seq != 0x0fff {
		t.Errorf("last id of the millisecond: (%d, %#x), want (%d, 0xfff)", ms, seq, ahead)
	}
	if ms, seq := idParts(t, b); ms != ahead+1 || seq != 0 {
		t.Errorf("next id: (%d, %#x), want (%d, 0)", ms, seq, ahead+1)
	}
	if a >= b {
		t.Errorf("%s does not sort before %s", a, b)
	}
}
