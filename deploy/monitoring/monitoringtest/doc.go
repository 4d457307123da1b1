// Package monitoringtest checks deploy/monitoring against a real controller:
// every metric that the Prometheus rules and the Grafana dashboard query
// must be one that `opsconductor dev` exports on /metrics, every rule file
// must load as Prometheus would load it, and the dashboard must import into
// Grafana with its datasource chosen at import.
//
// It is a module of its own so that the Prometheus server module, which it
// needs for the real PromQL parser and rule-file loader, stays out of the
// controller's go.mod. It therefore never imports the controller's packages:
// it builds the binary (or takes OPSCONDUCTOR_BIN) and runs it as a process.
package monitoringtest
