package sqlite

import (
	"context"
	"path/filepath"
	"testing"
)

func TestVersion(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v.db")
	old := openAtVersion(t, path, 2)
	if v, err := old.Version(ctx); err != nil || v != 2 {
		t.Errorf("Version of a file at 2 = %d, %v", v, err)
	}
	old.Close()
	st := openMigrateTest(t, Config{Path: path})
	if v, err := st.Version(ctx); err != nil || v != SchemaVersion() {
		t.Errorf("Version after Open = %d, %v; want %d", v, err, SchemaVersion())
	}
	mem := openMigrateTest(t, Config{})
	if v, err := mem.Version(ctx); err != nil || v != SchemaVersion() {
		t.Errorf("Version of :memory: = %d, %v; want %d", v, err, SchemaVersion())
	}
}
