package admin

import (
	"embed"
	"net/http"
)

//go:embed dashboard/index.html
var dashboardFiles embed.FS

// serveDashboard answers GET /: the dashboard page. It holds no data; its script reads
// everything from the JSON API with the token the user gives it.
func serveDashboard(w http.ResponseWriter, r *http.Request) {
	page, err := dashboardFiles.ReadFile("dashboard/index.html")
	if err != nil { // cannot happen: the file is embedded
		http.Error(w, "dashboard missing", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "+
		"connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
	_, _ = w.Write(page)
}
