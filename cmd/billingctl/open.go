package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/meterplane/billing"
	"github.com/meterplane/billing/store/sqlite"
)

// dbTarget is a parsed --db value.
type dbTarget struct {
	scheme string // "sqlite"
	path   string
}

func (d dbTarget) String() string { return d.scheme + ":" + d.path }

// parseDB parses --db: sqlite:PATH (also sqlite://PATH). postgres:// URLs are recognised and
// refused until the PostgreSQL store exists.
func parseDB(s string) (dbTarget, error) {
	switch {
	case s == "":
		return dbTarget{}, usagef("no database: give --db sqlite:PATH, or set BILLING_DB")
	case strings.HasPrefix(s, "postgres://"), strings.HasPrefix(s, "postgresql://"):
		return dbTarget{}, usagef("--db %s: the PostgreSQL store is not built yet; use --db sqlite:PATH", redact(s))
	case strings.HasPrefix(s, "sqlite:"):
		p := strings.TrimPrefix(s, "sqlite:")
		p = strings.TrimPrefix(p, "//")
		if p == "" || p == ":memory:" {
			return dbTarget{}, usagef("--db %s: give the path of the service's database file, as in sqlite:/var/lib/app/billing.db", s)
		}
		return dbTarget{scheme: "sqlite", path: p}, nil
	default:
		return dbTarget{}, usagef("--db %q: give sqlite:PATH (for example sqlite:billing.db)", s)
	}
}

// redact hides the password of a database URL in messages.
func redact(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return s
	}
	cred, host, ok := strings.Cut(rest, "@")
	if !ok {
		return s
	}
	if user, _, hasPass := strings.Cut(cred, ":"); hasPass {
		return scheme + "://" + user + ":xxxxx@" + host
	}
	return s
}

// session is an open store and Meter.
type session struct {
	m   *billing.Meter
	st  *sqlite.Store
	db  dbTarget
	loc *time.Location
}

// open opens the --db store and a Meter on it configured like the service (globals). create
// says whether a missing database file may be created (migrate); otherwise a missing file is a
// not-found error, so that a mistyped path never creates an empty database.
func (c *cli) open(create bool) (*session, error) {
	db, err := parseDB(c.g.db)
	if err != nil {
		return nil, err
	}
	loc, err := c.g.loc()
	if err != nil {
		return nil, err
	}
	if !create {
		if _, err := os.Stat(db.path); errors.Is(err, fs.ErrNotExist) {
			return nil, &notFoundError{fmt.Sprintf("database %s does not exist: check --db, or create it with 'billingctl migrate'", db)}
		}
	}
	st, err := sqlite.Open(db.path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", db, err)
	}
	m, err := billing.New(billing.Config{
		Store:         st,
		Location:      loc,
		Dimensions:    c.g.dims(),
		DefaultPlan:   c.g.defaultPlan,
		InvoicePrefix: c.g.invoicePrefix,
		// The service delivers alerts with its own Notifier; this process only records them.
		NoDelivery: true,
		Logger:     slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		st.Close()
		return nil, usagef("%v", err)
	}
	return &session{m: m, st: st, db: db, loc: loc}, nil
}

// close closes the Meter (flushing it) and then the store.
func (s *session) close() error {
	err := s.m.Close()
	if cerr := s.st.Close(); err == nil {
		err = cerr
	}
	return err
}

// closeInto closes s and keeps the first error in *err.
func (s *session) closeInto(err *error) {
	if cerr := s.close(); *err == nil && cerr != nil {
		*err = cerr
	}
}

// isTerminal reports whether w is a terminal (a character device), for progress bars and for
// refusing to print binary output to a screen.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
