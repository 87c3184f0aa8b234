package metrics_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/meterplane/billing"
	"github.com/meterplane/billing/metrics"
	"github.com/meterplane/billing/store/sqlite"
)

// The host mounts the handler beside its API; Prometheus scrapes it.
func ExampleHandler() {
	st, _ := sqlite.Open(":memory:")
	defer st.Close()
	m, _ := billing.New(billing.Config{Store: st})
	defer m.Close()

	mux := http.NewServeMux()
	mux.Handle("/metrics", metrics.Handler(m))

	m.Track(context.Background(), billing.Event{ID: "e1", Tenant: "acme", Resource: "requests", Quantity: 1})
	m.Track(context.Background(), billing.Event{ID: "e1", Tenant: "acme", Resource: "requests", Quantity: 1}) // a retry

	srv := httptest.NewServer(mux)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "billing_events_total{") {
			fmt.Println(sc.Text())
		}
	}
	// Output:
	// billing_events_total{result="closed"} 0
	// billing_events_total{result="conflict"} 0
	// billing_events_total{result="duplicate"} 1
	// billing_events_total{result="failed"} 0
	// billing_events_total{result="inserted"} 1
}
