package middleware

import (
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
)

// ChatProxy returns an Upstream for Chat that forwards requests to a real OpenAI-compatible
// endpoint. baseURL is the endpoint's origin and any path prefix, to which the request's path is
// appended: "https://api.openai.com" serves /v1/chat/completions. apiKey, when not empty, is sent
// as "Authorization: Bearer <apiKey>" (the service's own key; the client's credentials are never
// forwarded). Streamed responses are flushed as they arrive. An endpoint that cannot be reached is
// answered with a 502 upstream-unavailable problem, which cancels the request's reservations.
// The handler is safe for concurrent use.
func ChatProxy(baseURL, apiKey string) (http.Handler, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("middleware.ChatProxy: baseURL must be an http or https URL such as https://api.openai.com (got %q)", baseURL)
	}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Header.Del("Authorization")
			pr.Out.Header.Del("X-Api-Key")
			if apiKey != "" {
				pr.Out.Header.Set("Authorization", "Bearer "+apiKey)
			}
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			WriteError(w, fmt.Errorf("%w: %v", ErrUpstream, err))
		},
	}, nil
}
