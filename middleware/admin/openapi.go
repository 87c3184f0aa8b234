package admin

import (
	"net/http"
	"regexp"
	"strings"
)

// queryDocs describes the query parameters the routes take.
var queryDocs = map[string]string{
	"limit":    "Page size, 1 to 1000 (default 100).",
	"cursor":   "The next_cursor of the previous page.",
	"resource": "Only this resource, such as tokens.output.",
	"from":     "Start of the range (RFC 3339), inclusive.",
	"to":       "End of the range (RFC 3339), exclusive.",
	"window":   "Bucket size: hour, day (default), month or total.",
	"group_by": "Comma-separated attribute keys to split rows by, such as model.",
	"status":   "Only records in this status.",
	"tenant":   "Only this tenant.",
	"format":   "json (default), csv, html or pdf; overrides Accept.",
}

// bodySchemas are the JSON Schemas of the request bodies, by name.
var bodySchemas = map[string]any{
	"AggregateRequest": object(map[string]any{
		"tenant": str("Only this tenant; empty: all."), "from": dateTime(), "to": dateTime()}, "from", "to"),
	"QuotaBody": object(map[string]any{
		"limit":     map[string]any{"type": "integer", "minimum": 0},
		"hard":      map[string]any{"type": "boolean"},
		"notify_at": map[string]any{"type": []string{"array", "null"}, "items": map[string]any{"type": "integer"}},
	}, "limit"),
	"PlanAssignment": object(map[string]any{"plan_id": str("The plan's id.")}, "plan_id"),
	"InvoiceRequest": object(map[string]any{"start": dateTime(), "end": dateTime(),
		"at": dateTime()}),
	"Plan": map[string]any{"type": "object", "description": "A billing.Plan: id, name, currency, quotas, rates, prices, base_fee, minimum.",
		"properties": map[string]any{"id": str(""), "name": str(""), "currency": str(""),
			"quotas": map[string]any{"type": "array"}, "rates": map[string]any{"type": "array"},
			"prices": map[string]any{"type": "array"}, "base_fee": str("Decimal."), "minimum": str("Decimal.")},
		"additionalProperties": false},
}

func object(props map[string]any, required ...string) map[string]any {
	o := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		o["required"] = required
	}
	return o
}
func str(desc string) map[string]any { return map[string]any{"type": "string", "description": desc} }
func dateTime() map[string]any       { return map[string]any{"type": "string", "format": "date-time"} }

var pathParam = regexp.MustCompile(`\{([a-z]+)\}`)

// openAPIPath is the route and method of the document itself.
const openAPIPath = "/v1/openapi.json"

// openAPI builds the OpenAPI 3.1 document of the routes, and of itself.
func (h *handler) openAPI() map[string]any {
	paths := map[string]map[string]any{}
	add := func(method, path string, op map[string]any) {
		if paths[path] == nil {
			paths[path] = map[string]any{}
		}
		paths[path][strings.ToLower(method)] = op
	}
	problem := map[string]any{"description": "An RFC 9457 problem.",
		"content": map[string]any{"application/problem+json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Problem"}}}}
	for _, rt := range h.routes() {
		var params []any
		for _, m := range pathParam.FindAllStringSubmatch(rt.Path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		for _, q := range rt.Query {
			params = append(params, map[string]any{"name": q, "in": "query", "description": queryDocs[q], "schema": map[string]any{"type": "string"}})
		}
		op := map[string]any{
			"operationId": opID(rt.Method, rt.Path),
			"summary":     rt.Summary,
			"security":    []any{map[string]any{"bearer": []any{}}},
			"responses": map[string]any{
				"200":     map[string]any{"description": "OK", "content": map[string]any{"application/json": map[string]any{}}},
				"default": problem,
			},
		}
		if rt.Method == http.MethodDelete && strings.Contains(rt.Path, "/quotas/") {
			op["responses"] = map[string]any{"204": map[string]any{"description": "Deleted"}, "default": problem}
		}
		if params != nil {
			op["parameters"] = params
		}
		if rt.Body != "" {
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{
				"schema": map[string]any{"$ref": "#/components/schemas/" + rt.Body}}}}
		}
		add(rt.Method, rt.Path, op)
	}
	add("GET", openAPIPath, map[string]any{"operationId": "getOpenAPI", "summary": "This document",
		"responses": map[string]any{"200": map[string]any{"description": "OK"}}})
	schemas := map[string]any{"Problem": map[string]any{"type": "object", "properties": map[string]any{
		"type": str(""), "title": str(""), "status": map[string]any{"type": "integer"}, "detail": str(""), "param": str("")}}}
	for k, v := range bodySchemas {
		schemas[k] = v
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{"title": "meterplane billing admin API", "version": "1",
			"description": "Usage, quotas, rate limits, plans, invoices, alerts and the audit log of a billing.Meter. " +
				"Paths are relative to where the handler is mounted."},
		"servers": []any{map[string]any{"url": "."}},
		"paths":   paths,
		"components": map[string]any{
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}},
			"schemas":         schemas,
		},
	}
}

// opID derives an operationId such as "get_v1_tenants_tenant_summary".
func opID(method, path string) string {
	r := strings.NewReplacer("/", "_", "{", "", "}", "", "-", "_", ".", "_")
	return strings.ToLower(method) + r.Replace(path)
}

// serveOpenAPI answers GET /v1/openapi.json; it needs no token (it holds no data).
func (h *handler) serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	c := &call{w: w, r: r}
	_ = c.writeJSON(h.openAPI())
}
