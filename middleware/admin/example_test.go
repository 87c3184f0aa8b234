package admin_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/meterplane/billing"
	"github.com/meterplane/billing/middleware/admin"
	"github.com/meterplane/billing/store/sqlite"
)

// Mount the admin API and dashboard under /admin/ with an admin and a viewer token, then change
// a quota and read the change back from the audit log.
func Example() {
	st, _ := sqlite.Open(":memory:")
	defer st.Close()
	m, _ := billing.New(billing.Config{Store: st, Now: func() time.Time { return time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC) }})
	defer m.Close()

	tokens := map[string]string{
		"example-admin-token-0001":  "admin=alice", // in production: random tokens from a secret store
		"example-viewer-token-0001": "viewer",
	}
	mux := http.NewServeMux()
	mux.Handle("/admin/", http.StripPrefix("/admin", admin.Handler(m, admin.Options{Tokens: tokens})))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	call := func(token, method, path, body string) {
		req, _ := http.NewRequestWithContext(context.Background(), method, srv.URL+path, bytesOrNil(body))
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		fmt.Println(method, path, res.Status)
		if method == "GET" {
			fmt.Print(string(b))
		}
	}
	call("example-viewer-token-0001", "PUT", "/admin/v1/tenants/acme/quotas/requests/day", `{"limit":1000,"hard":true}`)
	call("example-admin-token-0001", "PUT", "/admin/v1/tenants/acme/quotas/requests/day", `{"limit":1000,"hard":true}`)
	call("example-viewer-token-0001", "GET", "/admin/v1/audit?limit=1", "")
	// Output:
	// PUT /admin/v1/tenants/acme/quotas/requests/day 403 Forbidden
	// PUT /admin/v1/tenants/acme/quotas/requests/day 200 OK
	// GET /admin/v1/audit?limit=1 200 OK
	// {
	//   "data": [
	//     {
	//       "id": 1,
	//       "at": "2026-03-15T12:00:00Z",
	//       "principal": "alice",
	//       "action": "quota.put",
	//       "tenant": "acme",
	//       "target": "quotas/requests/day",
	//       "after": {
	//         "tenant": "acme",
	//         "resource": "requests",
	//         "period": "day",
	//         "limit": 1000,
	//         "hard": true,
	//         "notify_at": null
	//       }
	//     }
	//   ]
	// }
}

func bytesOrNil(s string) io.Reader {
	if s == "" {
		return nil
	}
	return strings.NewReader(s)
}
