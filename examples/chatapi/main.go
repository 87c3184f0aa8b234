// Command chatapi is a demo of the billing library in front of an OpenAI-compatible chat API: a
// built-in deterministic model (no network, no weights), two tenants on two plans, API keys,
// rate limits, hard and soft quotas, token metering per model, cost headers, and SQLite.
//
//	go run ./examples/chatapi              # serve on 127.0.0.1:8080; prints curl commands
//	go run ./examples/chatapi -selftest    # serve on a random port, call it, print usage, exit
//
// The admin API and dashboard (package middleware/admin) are mounted at /admin/; the server
// prints their URL with a random admin token in the fragment (/admin/#token=...), which the page
// moves to the tab's sessionStorage. A tenant's API key opens the dashboard for that tenant alone.
//
// Flags: -addr (default 127.0.0.1:8080), -db (default billing-chatapi.db in the temp directory),
// -delay (pause between streamed words, default 20ms), -selftest.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/meterplane/billing"
	"github.com/meterplane/billing/store/sqlite"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on")
	db := flag.String("db", filepath.Join(os.TempDir(), "billing-chatapi.db"), "SQLite database file")
	delay := flag.Duration("delay", 20*time.Millisecond, "pause between streamed words")
	selftest := flag.Bool("selftest", false, "serve on a random port, make a few requests, print usage and exit "+
		"(on a fresh database in a temporary directory unless -db is given)")
	flag.Parse()

	if *selftest {
		path, cleanup := *db, func() {}
		if !flagSet("db") {
			dir, err := os.MkdirTemp("", "chatapi-selftest-")
			if err != nil {
				log.Fatal(err)
			}
			path, cleanup = filepath.Join(dir, "billing.db"), func() { os.RemoveAll(dir) }
		}
		err := runSelftest(os.Stdout, path)
		cleanup()
		if err != nil {
			fmt.Fprintln(os.Stderr, "selftest FAILED:", err)
			os.Exit(1)
		}
		return
	}
	if err := serve(*addr, *db, *delay); err != nil {
		log.Fatal(err)
	}
}

func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// app is a running demo: its store, Meter and server.
type app struct {
	store *sqlite.Store
	meter *billing.Meter
	svc   *service
	srv   *http.Server
	ln    net.Listener
}

// start opens the database at path, sets up the demo and listens on addr (":0" for a random
// port); logs go to logOut.
func start(addr, path string, delay time.Duration, logOut io.Writer) (*app, error) {
	st, err := sqlite.Open(path)
	if err != nil {
		return nil, err
	}
	logger := slog.New(slog.NewTextHandler(logOut, nil))
	m, err := billing.New(billing.Config{Store: st, Logger: logger})
	if err != nil {
		st.Close()
		return nil, err
	}
	svc, err := newService(context.Background(), m, delay)
	if err == nil {
		var ln net.Listener
		if ln, err = net.Listen("tcp", addr); err == nil {
			a := &app{store: st, meter: m, svc: svc, ln: ln, srv: &http.Server{Handler: svc.Handler,
				ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelError)}}
			go func() {
				if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
					logger.Error("serve", "err", err)
				}
			}()
			return a, nil
		}
	}
	m.Close()
	st.Close()
	return nil, err
}

// URL is the base URL of the running server.
func (a *app) URL() string { return "http://" + a.ln.Addr().String() }

// stop shuts down gracefully: no new requests, in-flight ones finish, their usage commits, and
// the Meter drains to disk.
func (a *app) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := a.srv.Shutdown(ctx)
	a.svc.Pending.Wait()
	a.meter.Close()
	return errors.Join(err, a.store.Close())
}

func serve(addr, path string, delay time.Duration) error {
	a, err := start(addr, path, delay, os.Stderr)
	if err != nil {
		return err
	}
	printHelp(os.Stdout, a.URL(), path)
	fmt.Printf("\nAdmin dashboard and API (token: %s)\n  %s/admin/#token=%s\n  curl %s/admin/v1/tenants -H \"Authorization: Bearer %s\"\n"+
		"  A tenant's API key opens the dashboard for that tenant alone: %s/admin/#tenant=%s&token=%s\n",
		a.svc.AdminToken, a.URL(), a.svc.AdminToken, a.URL(), a.svc.AdminToken, a.URL(), demoTenants[1].Tenant, demoTenants[1].Key)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	fmt.Println("\nshutting down: finishing requests and flushing usage...")
	return a.stop()
}

func printHelp(w io.Writer, url, path string) {
	free, pro := demoTenants[0], demoTenants[1]
	fmt.Fprintf(w, `chatapi: an OpenAI-compatible demo API, metered by github.com/meterplane/billing
  listening on %s   usage database %s

tenants: %s (plan %s, key %s)   %s (plan %s, key %s)
models:  demo-mini (echoes your words), demo-max (echoes them reversed); 1 word = 1 token

Chat (non-streaming): usage, a cost header and rate-limit headers come back
  curl -i %s/v1/chat/completions -H "Authorization: Bearer %s" \
    -H "Content-Type: application/json" \
    -d '{"model":"demo-mini","messages":[{"role":"user","content":"hello metered world"}]}'

Chat (streaming, with the usage chunk; the cost arrives as a trailer)
  curl -N --raw %s/v1/chat/completions -H "Authorization: Bearer %s" \
    -H "Content-Type: application/json" \
    -d '{"model":"demo-max","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"one two three four five"}]}'

The free tenant: 10 requests a minute, 2,000 output tokens a day; a soft limit warns after 5 an hour
  curl -i %s/v1/chat/completions -H "Authorization: Bearer %s" \
    -H "Content-Type: application/json" \
    -d '{"model":"demo-mini","stream":true,"messages":[{"role":"user","content":"hi there"}]}'

Errors are RFC 9457 problems (a 400 for an unknown model, 401 for a bad key, 429 over a limit)
  curl -i %s/v1/chat/completions -H "Authorization: Bearer %s" -d '{"model":"gpt-9","messages":[]}'

Your quotas and today's usage by model
  curl %s/v1/usage -H "Authorization: Bearer %s"

Any OpenAI SDK works too: base URL %s/v1, API key %s.
Ctrl-C stops the server (in-flight usage is flushed first).
`, url, path, free.Tenant, free.Plan, free.Key, pro.Tenant, pro.Plan, pro.Key,
		url, pro.Key, url, pro.Key, url, free.Key, url, free.Key, url, free.Key, url, pro.Key)
}
