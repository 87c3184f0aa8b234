// Package migrations reads the numbered schema migrations that the SQL stores embed.
package migrations

import (
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// Migration is one numbered schema change, from a file named NNNN_name.sql.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Read returns the migrations in directory dir of fsys, in version order. Versions must be
// 1, 2, 3... with no gap; store names the store in error messages.
func Read(fsys fs.FS, dir, store string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, e := range entries {
		num, name, ok := strings.Cut(strings.TrimSuffix(e.Name(), ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("%s: migration file %s is not named NNNN_name.sql", store, e.Name())
		}
		body, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{Version: v, Name: name, SQL: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i, m := range out {
		if m.Version != i+1 {
			return nil, fmt.Errorf("%s: migrations must be numbered 1, 2, 3...; found %d at position %d", store, m.Version, i+1)
		}
	}
	return out, nil
}
