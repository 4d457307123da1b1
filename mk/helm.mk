# The Helm chart (deploy/helm/opsconductor), rendered and checked by a Go
# module of its own (deploy/helm/charttest) with Helm's library, so that
# Helm and the Kubernetes API types stay out of the main module. The
# built binaries let it check every flag the chart passes and run the
# rendered StatefulSet as three real controllers (with
# OPSCONDUCTOR_TEST_POSTGRES for their shared history store).
.PHONY: helm-test helm-lint

helm-test: build
	cd deploy/helm/charttest && OPSCONDUCTOR_BIN=$(CURDIR)/$(BIN)/opsconductor \
		OPSCONDUCTOR_AGENT_BIN=$(CURDIR)/$(BIN)/opsconductor-agent $(GO) test -count=1 $(GOTESTFLAGS) ./...

helm-lint:
	cd deploy/helm/charttest && $(GO) vet ./... && $(TOOLS)/staticcheck ./...

TEST_EXTRA += helm-test
LINT_EXTRA += helm-lint
