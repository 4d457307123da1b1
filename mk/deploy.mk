# Deployment files (deploy/systemd, deploy/docker, deploy/compose) checked
# without Docker or a running systemd, by the separate module
# deploy/deploytest (its parsers stay out of the main go.mod). The checks
# run the built binaries' --help, so they follow `build`.
.PHONY: deploy-test deploy-lint

deploy-test: build
	cd deploy/deploytest && OPSCONDUCTOR_BIN=$(CURDIR)/$(BIN)/opsconductor \
		OPSCONDUCTOR_AGENT_BIN=$(CURDIR)/$(BIN)/opsconductor-agent $(GO) test -count=1 $(GOTESTFLAGS) ./...

# `make lint` vets the main module only; this one gets the same checks
# (gofmt already covers every tracked .go file). staticcheck is installed
# by `lint` before it runs the extra targets.
deploy-lint:
	cd deploy/deploytest && $(GO) vet ./... && $(TOOLS)/staticcheck ./...

TEST_EXTRA += deploy-test
LINT_EXTRA += deploy-lint
