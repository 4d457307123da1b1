// Package gateway is the controller's HTTP server (port 3000): routing, the
// middleware every request passes through (request IDs, access log, metrics,
// panic recovery, CORS, gzip, rate limits, body limits), strict JSON decoding,
// the JSON error envelope, health aggregation and the OpenAPI document.
//
// It is thin on purpose: a handler authenticates (later), limits, decodes,
// calls one domain service through the small interfaces in backend.go, and
// encodes. It must never hold domain logic, read a domain's tables, or decide
// anything a domain should decide; domain errors arrive as *problem.Error and
// are turned into HTTP statuses in exactly one place (writeError).
package gateway
