# Deployment files (deploy/systemd, deploy/docker, deploy/compose) checked
# without Docker or a running systemd, by the separate module
# deploy/deploytest (its parsers stay out of the main go.mod). The checks
# run the built binaries' --help, so they follow `build`.
.PHONY: deploy-test deploy-lint deploy-tools

# The system tools the checks use, from Debian when missing and run as
# root (the checks skip, or leave ShellCheck out, without them).
DEPLOY_TOOLS := systemd-analyze:systemd shellcheck:shellcheck psql:postgresql-client
deploy-tools:
	@for t in $(DEPLOY_TOOLS); do \
		command -v $${t%%:*} >/dev/null && continue; \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get install -y -q $${t#*:} >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q $${t#*:} >/dev/null; } || \
				echo "deploy-tools: could not install $${t#*:}; the checks that need $${t%%:*} will skip" >&2; \
		else echo "deploy-tools: $${t%%:*} is missing (Debian package $${t#*:}); the checks that need it will skip" >&2; fi; \
	done

deploy-test: build deploy-tools
	cd deploy/deploytest && OPSCONDUCTOR_BIN=$(CURDIR)/$(BIN)/opsconductor \
		OPSCONDUCTOR_AGENT_BIN=$(CURDIR)/$(BIN)/opsconductor-agent $(GO) test -count=1 $(GOTESTFLAGS) ./...

# `make lint` vets the main module only; this one gets the same checks
# (gofmt already covers every tracked .go file). staticcheck is installed
# by `lint` before it runs the extra targets.
deploy-lint:
	cd deploy/deploytest && $(GO) vet ./... && $(TOOLS)/staticcheck ./...

TEST_EXTRA += deploy-test
LINT_EXTRA += deploy-lint
