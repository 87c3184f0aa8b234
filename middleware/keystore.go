package middleware

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"sync"
)

// KeyStore maps API keys to tenants for FromAPIKey. It keeps only the SHA-256 digest of each key,
// never the key: a leaked KeyStore (or a dump of the digests it was loaded from) does not reveal a
// usable key. Lookup hashes the presented key, narrows the candidates by the first 8 bytes of the
// digest, and compares the full digests of the candidates with crypto/subtle in constant time.
//
// The zero value is an empty store, ready to use. Safe for concurrent use: keys can be added and
// revoked while requests are served.
type KeyStore struct {
	mu    sync.RWMutex
	byTag map[uint64][]keyEntry // first 8 bytes of the digest -> entries
	n     int
}

type keyEntry struct {
	digest [sha256.Size]byte
	tenant string
}

// MinKeyLen is the shortest API key Add accepts, in bytes: keys are bearer secrets and must not be
// guessable. Generate them with crypto/rand (32 random bytes, hex or base64 encoded).
const MinKeyLen = 16

// NewKeyStore returns an empty KeyStore (the same as its zero value).
func NewKeyStore() *KeyStore { return &KeyStore{} }

// HashKey returns the hex SHA-256 digest of key: the form in which keys are stored, and what
// AddHash takes, so a service can keep digests in its configuration instead of keys.
func HashKey(key string) string {
	d := sha256.Sum256([]byte(key))
	return hex.EncodeToString(d[:])
}

// Add lets key identify tenant. A key shorter than MinKeyLen, an invalid tenant id, or a key that
// already names another tenant is an error. Adding the same key for the same tenant is a no-op.
func (s *KeyStore) Add(key, tenant string) error {
	if len(key) < MinKeyLen {
		return fmt.Errorf("middleware: an API key must be at least %d bytes (got %d)", MinKeyLen, len(key))
	}
	return s.add(sha256.Sum256([]byte(key)), tenant)
}

// AddHash is Add for a key known only by its digest: hexDigest is HashKey(key).
func (s *KeyStore) AddHash(hexDigest, tenant string) error {
	var d [sha256.Size]byte
	if n, err := hex.Decode(d[:], []byte(hexDigest)); err != nil || n != sha256.Size || len(hexDigest) != 2*sha256.Size {
		return fmt.Errorf("middleware: a key digest must be %d hex digits, a SHA-256 from HashKey (got %d characters)",
			2*sha256.Size, len(hexDigest))
	}
	return s.add(d, tenant)
}

func (s *KeyStore) add(d [sha256.Size]byte, tenant string) error {
	if err := checkTenant(tenant); err != nil {
		return fmt.Errorf("middleware: cannot add an API key: %w", err)
	}
	tag := binary.BigEndian.Uint64(d[:8])
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.byTag[tag] {
		if e.digest == d {
			if e.tenant == tenant {
				return nil
			}
			return fmt.Errorf("middleware: this API key already belongs to another tenant")
		}
	}
	if s.byTag == nil {
		s.byTag = make(map[uint64][]keyEntry)
	}
	s.byTag[tag] = append(s.byTag[tag], keyEntry{digest: d, tenant: tenant})
	s.n++
	return nil
}

// Remove revokes key and reports whether it was held. Requests already identified are not affected.
func (s *KeyStore) Remove(key string) bool {
	d := sha256.Sum256([]byte(key))
	tag := binary.BigEndian.Uint64(d[:8])
	s.mu.Lock()
	defer s.mu.Unlock()
	list := s.byTag[tag]
	for i, e := range list {
		if e.digest == d {
			list = append(list[:i:i], list[i+1:]...)
			if len(list) == 0 {
				delete(s.byTag, tag)
			} else {
				s.byTag[tag] = list
			}
			s.n--
			return true
		}
	}
	return false
}

// Lookup returns the tenant key identifies, and whether there is one. Every candidate digest is
// compared in full, in constant time.
func (s *KeyStore) Lookup(key string) (string, bool) {
	if s == nil {
		return "", false
	}
	d := sha256.Sum256([]byte(key))
	tag := binary.BigEndian.Uint64(d[:8])
	s.mu.RLock()
	defer s.mu.RUnlock()
	tenant, found := "", 0
	for i := range s.byTag[tag] {
		e := &s.byTag[tag][i]
		if subtle.ConstantTimeCompare(e.digest[:], d[:]) == 1 {
			tenant, found = e.tenant, 1
		}
	}
	return tenant, found == 1
}

// Len returns how many keys are held.
func (s *KeyStore) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.n
}
