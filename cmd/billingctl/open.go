package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/meterplane/billing"
	"github.com/meterplane/billing/store/postgres"
	"github.com/meterplane/billing/store/sqlite"
)

// dbTarget is a parsed --db value (and --schema, for PostgreSQL).
type dbTarget struct {
	scheme string // "sqlite" or "postgres"
	path   string // sqlite: the database file
	url    string // postgres: the connection URL, password included: never print it, print String()
	schema string // postgres: the schema that holds the tables
}

// String names the database in messages, with any password masked.
func (d dbTarget) String() string {
	if d.scheme == "postgres" {
		return redact(d.url) + " (schema " + d.schema + ")"
	}
	return d.scheme + ":" + d.path
}

// parseDB parses --db: sqlite:PATH (also sqlite://PATH), or a postgres:// (postgresql://) URL
// whose tables are in the schema named by --schema.
func parseDB(s, schema string) (dbTarget, error) {
	switch {
	case s == "":
		return dbTarget{}, usagef("no database: give --db sqlite:PATH or --db postgres://USER@HOST:5432/DB, or set BILLING_DB")
	case strings.HasPrefix(s, "postgres://"), strings.HasPrefix(s, "postgresql://"):
		if _, err := pgx.ParseConfig(s); err != nil {
			return dbTarget{}, usagef("--db %s: not a usable PostgreSQL URL (%s): give postgres://USER[:PASSWORD]@HOST:PORT/DATABASE[?sslmode=...]", redact(s), mask(s, err.Error()))
		}
		if schema == "" {
			schema = "billing"
		}
		// Checked here too, so that a bad --schema is a usage error before anything connects.
		if err := postgres.CheckSchema(schema); err != nil {
			return dbTarget{}, usagef("--schema %v", err)
		}
		return dbTarget{scheme: "postgres", url: s, schema: schema}, nil
	case strings.HasPrefix(s, "sqlite:"):
		p := strings.TrimPrefix(s, "sqlite:")
		p = strings.TrimPrefix(p, "//")
		if p == "" || p == ":memory:" {
			return dbTarget{}, usagef("--db %s: give the path of the service's database file, as in sqlite:/var/lib/app/billing.db", s)
		}
		return dbTarget{scheme: "sqlite", path: p}, nil
	default:
		return dbTarget{}, usagef("--db %q: give sqlite:PATH (for example sqlite:billing.db) or a postgres:// URL", redact(s))
	}
}

// passwordParam matches a password=VALUE parameter (password, sslpassword) of a URL query or a
// key=value connection string; group 1 is the part kept.
var passwordParam = regexp.MustCompile(`(?i)((?:^|[?&\s])(?:ssl)?password=)([^&\s#]*)`)

// redact hides the passwords of a database URL in messages: the one in its user information and
// any password= parameter.
func redact(s string) string {
	if scheme, rest, ok := strings.Cut(s, "://"); ok {
		hostEnd := strings.IndexAny(rest, "/?#")
		if hostEnd < 0 {
			hostEnd = len(rest)
		}
		// The user information ends at the last @ of the authority: a password may hold an @.
		if at := strings.LastIndex(rest[:hostEnd], "@"); at >= 0 {
			if user, _, hasPass := strings.Cut(rest[:at], ":"); hasPass {
				rest = user + ":xxxxx" + rest[at:]
			}
		}
		s = scheme + "://" + rest
	}
	return passwordParam.ReplaceAllString(s, "${1}xxxxx")
}

// secrets returns the passwords found in a database URL, as written and decoded, for mask.
func secrets(s string) []string {
	var out []string
	add := func(p string) {
		if p == "" {
			return
		}
		out = append(out, p)
		if d, err := url.QueryUnescape(p); err == nil && d != p {
			out = append(out, d)
		}
	}
	if _, rest, ok := strings.Cut(s, "://"); ok {
		hostEnd := strings.IndexAny(rest, "/?#")
		if hostEnd < 0 {
			hostEnd = len(rest)
		}
		if at := strings.LastIndex(rest[:hostEnd], "@"); at >= 0 {
			if _, pass, hasPass := strings.Cut(rest[:at], ":"); hasPass {
				add(pass)
			}
		}
	}
	for _, m := range passwordParam.FindAllStringSubmatch(s, -1) {
		add(m[2])
	}
	return out
}

// mask replaces every password of the database URL db that appears in msg with xxxxx: a last
// guard for messages built from errors that quote the URL.
func mask(db, msg string) string {
	for _, p := range secrets(db) {
		msg = strings.ReplaceAll(msg, p, "xxxxx")
	}
	return msg
}

// store is what billingctl needs of a backend: the billing.Store and its schema version.
type store interface {
	billing.Store
	// Version returns the schema version of the opened database.
	Version(ctx context.Context) (int, error)
	// Close closes the store.
	Close() error
}

// session is an open store and Meter.
type session struct {
	m      *billing.Meter
	st     store
	db     dbTarget
	loc    *time.Location
	before int // the schema version before the store was opened (and migrated)
	knows  int // the schema version this billingctl migrates to
}

// connectTimeout bounds each attempt to reach a PostgreSQL server whose URL sets no
// connect_timeout, so that an unreachable host fails in seconds instead of hanging.
const connectTimeout = 10 * time.Second

// open opens the --db store and a Meter on it configured like the service (globals). create
// says whether a missing database may be created (migrate): otherwise a missing SQLite file or
// PostgreSQL schema is a not-found error, so that a typo never creates an empty database.
func (c *cli) open(ctx context.Context, create bool) (*session, error) {
	db, err := parseDB(c.g.db, c.g.schema)
	if err != nil {
		return nil, err
	}
	loc, err := c.g.loc()
	if err != nil {
		return nil, err
	}
	s := &session{db: db, loc: loc}
	switch db.scheme {
	case "postgres":
		err = s.openPostgres(ctx, create)
	default:
		err = s.openSQLite(create)
	}
	if err != nil {
		return nil, err
	}
	m, err := billing.New(billing.Config{
		Store:         s.st,
		Location:      loc,
		Dimensions:    c.g.dims(),
		DefaultPlan:   c.g.defaultPlan,
		InvoicePrefix: c.g.invoicePrefix,
		// The service delivers alerts with its own Notifier; this process only records them.
		NoDelivery: true,
		Logger: slog.New(slog.NewTextHandler(&maskWriter{w: c.stderr, db: db.url},
			&slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		s.st.Close()
		return nil, usagef("%v", err)
	}
	s.m = m
	return s, nil
}

// openSQLite opens the database file. With create, it first reads the file's schema version.
func (s *session) openSQLite(create bool) error {
	path := s.db.path
	_, statErr := os.Stat(path)
	missing := errors.Is(statErr, fs.ErrNotExist)
	if missing && !create {
		return &notFoundError{fmt.Sprintf("database %s does not exist: check --db, or create it with 'billingctl migrate'", s.db)}
	}
	if create && !missing {
		v, err := sqliteVersion(path)
		if err != nil {
			return fmt.Errorf("open %s: %w", s.db, err)
		}
		s.before = v
	}
	st, err := sqlite.Open(path)
	if err != nil {
		return fmt.Errorf("open %s: %w", s.db, err)
	}
	s.st, s.knows = st, sqlite.SchemaVersion()
	return nil
}

// uriEscaper escapes the characters of a file path that an SQLite URI filename would read as
// syntax.
var uriEscaper = strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")

// sqliteVersion reads the schema version of the SQLite file at path without changing it: 0
// when it has no schema yet.
func sqliteVersion(path string) (int, error) {
	// The sqlite3 driver is registered by store/sqlite.
	db, err := sql.Open("sqlite3", "file:"+uriEscaper.Replace(path)+"?mode=ro")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var tables int
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'billing_migrations'`).Scan(&tables); err != nil {
		return 0, err
	}
	if tables == 0 {
		return 0, nil
	}
	var v int
	err = db.QueryRow(`SELECT COALESCE(MAX(version), 0) FROM billing_migrations`).Scan(&v)
	return v, err
}

// openPostgres checks that the server answers and (unless create) that the schema holds a
// billing store, then opens the store, which migrates the schema.
func (s *session) openPostgres(ctx context.Context, create bool) error {
	exists, v, err := postgresVersion(ctx, s.db)
	if err != nil {
		return err
	}
	if !exists && !create {
		return &notFoundError{fmt.Sprintf("database %s has no billing store: check --db and --schema, or create it with 'billingctl migrate'", s.db)}
	}
	s.before = v
	st, err := postgres.OpenConfig(ctx, postgres.Config{URL: s.db.url, Schema: s.db.schema})
	if err != nil {
		return s.db.openError(err)
	}
	s.st, s.knows = st, postgres.SchemaVersion()
	return nil
}

// postgresVersion connects once to the server of db and reads the schema version of db.schema:
// exists says whether the schema holds a billing store (its billing_migrations table).
func postgresVersion(ctx context.Context, db dbTarget) (exists bool, version int, err error) {
	cc, err := pgx.ParseConfig(db.url)
	if err != nil {
		return false, 0, usagef("--db %s: %s", redact(db.url), mask(db.url, err.Error()))
	}
	if cc.ConnectTimeout == 0 {
		cc.ConnectTimeout = connectTimeout
	}
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return false, 0, db.openError(err)
	}
	defer conn.Close(context.Background())
	table := pgx.Identifier{db.schema, "billing_migrations"}.Sanitize()
	if err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&exists); err != nil {
		return false, 0, db.openError(err)
	}
	if !exists {
		return false, 0, nil
	}
	if err := conn.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM `+table).Scan(&version); err != nil {
		return false, 0, db.openError(err)
	}
	return true, version, nil
}

// openError describes a failure to open db: a server that cannot be reached (or refuses the
// connection) is an unavailableError, anything else a runtime error.
func (d dbTarget) openError(err error) error {
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return &unavailableError{msg: fmt.Sprintf("cannot connect to %s (check --db, and that the server is running and accepts the login): %s",
			redact(d.url), oneLine(mask(d.url, err.Error()))), err: err}
	}
	return fmt.Errorf("open %s: %w", d, err)
}

// oneLine joins the lines of a driver's message (a heading, then one line per connection
// attempt) into one, dropping repeated lines.
func oneLine(msg string) string {
	var parts []string
	seen := map[string]bool{}
	for _, l := range strings.Split(msg, "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !seen[l] {
			seen[l] = true
			parts = append(parts, l)
		}
	}
	if len(parts) < 2 {
		return strings.Join(parts, "")
	}
	return parts[0] + " " + strings.Join(parts[1:], "; ")
}

// maskWriter writes to w with the passwords of the database URL db masked.
type maskWriter struct {
	w  io.Writer
	db string
}

func (m *maskWriter) Write(p []byte) (int, error) {
	if len(secrets(m.db)) == 0 {
		return m.w.Write(p)
	}
	if _, err := io.WriteString(m.w, mask(m.db, string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
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
