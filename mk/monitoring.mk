# deploy/monitoring: the Prometheus rules and the Grafana dashboard are
# checked against a real controller (every metric they query must be one it
# exports) by deploy/monitoring/monitoringtest. That is a module of its own,
# so that the Prometheus server module it needs for the real PromQL parser
# and rule loader stays out of the controller's go.mod; it builds the
# controller itself, or runs OPSCONDUCTOR_BIN when that is set.
MONITORING_DIR := deploy/monitoring/monitoringtest

.PHONY: monitoring-test monitoring-lint

monitoring-test:
	cd $(MONITORING_DIR) && $(GO) test -count=1 -timeout 10m $(GOTESTFLAGS) ./...

# Runs after `make lint` has installed staticcheck into $(TOOLS).
monitoring-lint:
	cd $(MONITORING_DIR) && $(GO) vet ./... && $(TOOLS)/staticcheck ./...

TEST_EXTRA += monitoring-test
LINT_EXTRA += monitoring-lint
