package middleware

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

func TestKeyStore(t *testing.T) {
	var ks KeyStore // the zero value works
	key := "sk-live-0123456789abcdef"
	if err := ks.Add(key, "acme"); err != nil {
		t.Fatal(err)
	}
	if err := ks.Add(key, "acme"); err != nil {
		t.Errorf("adding the same key again: %v", err)
	}
	if err := ks.Add(key, "globex"); err == nil {
		t.Error("one key for two tenants was accepted")
	}
	if err := ks.Add("short", "acme"); err == nil {
		t.Error("a short key was accepted")
	}
	if err := ks.AddHash(HashKey("sk-hashed-0123456789abcdef"), "globex"); err != nil {
		t.Fatal(err)
	}
	if err := ks.AddHash("abc", "globex"); err == nil || !strings.Contains(err.Error(), "64 hex digits") {
		t.Errorf("bad digest: %v", err)
	}
	for k, want := range map[string]string{key: "acme", "sk-hashed-0123456789abcdef": "globex", "sk-other-0123456789": ""} {
		if got, ok := ks.Lookup(k); got != want || ok != (want != "") {
			t.Errorf("Lookup(%q) = %q, %v; want %q", k, got, ok, want)
		}
	}
	if ks.Len() != 2 || !ks.Remove(key) || ks.Remove(key) || ks.Len() != 1 {
		t.Errorf("Remove/Len: %d", ks.Len())
	}
	if _, ok := ks.Lookup(key); ok {
		t.Error("a removed key still identifies its tenant")
	}
	// Only digests are kept.
	if s := fmt.Sprintf("%+v", ks.byTag); strings.Contains(s, "sk-") {
		t.Errorf("the store holds a key in clear: %s", s)
	}
}

func TestKeyStoreConcurrent(t *testing.T) {
	ks := NewKeyStore()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 200 {
				k := fmt.Sprintf("sk-%02d-%04d-padding-padding", i, j)
				if err := ks.Add(k, fmt.Sprintf("t%d", i)); err != nil {
					t.Error(err)
				}
				if got, _ := ks.Lookup(k); got != fmt.Sprintf("t%d", i) {
					t.Errorf("Lookup = %q", got)
				}
			}
		}()
	}
	wg.Wait()
	if ks.Len() != 1600 {
		t.Errorf("Len = %d", ks.Len())
	}
}

func BenchmarkKeyStoreLookup(b *testing.B) {
	ks := NewKeyStore()
	for i := range 10_000 {
		_ = ks.Add(fmt.Sprintf("sk-%08d-padding-padding", i), "t")
	}
	for b.Loop() {
		ks.Lookup("sk-00004242-padding-padding")
	}
}
