# OpsConductor build. Every install step the tests need lives here or in
# .ci/run, so a fresh clone needs nothing but Go (and, for the UI, Node.js).

GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X github.com/opsconductor/opsconductor/internal/buildinfo.version=$(VERSION)
BIN       := bin
TOOLS     := $(CURDIR)/bin/tools
# The race detector is on for `make test`: CI runs it, and concurrency bugs
# in a Raft controller are the ones worth catching early. RACE= turns it off.
RACE      ?= -race
GOTESTFLAGS ?=

STATICCHECK_VERSION := v0.8.2
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2

.PHONY: all build dev test test-extra bench proto plugins web web-deps e2e lint lint-extra fmt clean

# Each area keeps its own targets in mk/NAME.mk (release, deployment checks,
# benchmarks, chaos). A fragment that has checks for `make test` or `make
# lint` adds its target's name to TEST_EXTRA or LINT_EXTRA.
TEST_EXTRA :=
LINT_EXTRA :=
-include $(sort $(wildcard mk/*.mk))

all: build

# Static binaries (no libc: they run on any Linux and map less), without
# gRPC's x/net/trace debug pages (grpcnotrace), which nothing here serves.
BUILDFLAGS := -trimpath -tags grpcnotrace

build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build $(BUILDFLAGS) -ldflags '$(LDFLAGS)' -o $(BIN)/opsconductor ./cmd/opsconductor
	CGO_ENABLED=0 $(GO) build $(BUILDFLAGS) -ldflags '$(LDFLAGS)' -o $(BIN)/opsconductor-agent ./cmd/opsconductor-agent

# The all-in-one controller on http://127.0.0.1:3000 with its data in
# ./.opsconductor-dev, serving the UI built first (go:embed takes web/dist
# at build time). DEVFLAGS passes extra flags (e.g. --data-dir). For hot
# reload run `cd web && npm run dev` beside it and open :5173.
dev:
	@if command -v node >/dev/null; then $(MAKE) --no-print-directory web; \
	else echo "dev: Node.js is not installed: the controller runs without the web UI"; fi
	@$(MAKE) --no-print-directory build
	$(BIN)/opsconductor dev $(DEVFLAGS)

# The whole suite: unit, cluster (in-process), multi-process and the seed
# corpora of every fuzz target. PostgreSQL-backed tests use
# OPSCONDUCTOR_TEST_POSTGRES when it is set.
# The web unit tests (vitest) run too when Node.js is installed; WEB_TEST=0
# skips them (CI runs them in its web step).
WEB_TEST ?= 1
test:
	$(GO) vet ./...
	$(GO) test $(RACE) -count=1 -timeout 20m $(GOTESTFLAGS) ./...
	@if [ "$(WEB_TEST)" = 0 ]; then exit 0; fi; \
	if ! command -v node >/dev/null; then echo "test: Node.js is not installed: skipping the web unit tests"; exit 0; fi; \
	$(WEB_DEPS) && npx vitest run
	@$(MAKE) --no-print-directory test-extra

test-extra: $(TEST_EXTRA)
	@:

# Regenerates protobuf Go code from proto/**/*.proto with pinned generators
# (protoc from Debian's protobuf-compiler).
proto:
	@files=$$(find proto -name '*.proto' 2>/dev/null); \
	if [ -z "$$files" ]; then echo "proto: no .proto files yet"; exit 0; fi; \
	command -v protoc >/dev/null || { echo "proto: protoc missing: apt-get install -y protobuf-compiler" >&2; exit 1; }; \
	GOBIN=$(TOOLS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION); \
	GOBIN=$(TOOLS) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION); \
	PATH=$(TOOLS):$$PATH protoc -I proto --go_out=proto --go_opt=paths=source_relative \
		--go-grpc_out=proto --go-grpc_opt=paths=source_relative $$files

# Builds the example step plugins into bin/plugins/, one binary per
# directory under plugins/examples (GOOS/GOARCH cross-compile them).
plugins:
	@mkdir -p $(BIN)/plugins
	@for d in plugins/examples/*/; do \
		n=$$(basename $$d); [ "$$n" = internal ] && continue; \
		echo "plugins: $(BIN)/plugins/$$n"; \
		$(GO) build -trimpath -ldflags '-s -w' -o $(BIN)/plugins/$$n ./$$d || exit 1; \
	done

# Builds the web UI into web/dist for embedding; `make build` afterwards
# puts it in the binary. Prints every chunk's size and fails when the
# initial JavaScript is over its budget (web/scripts/size.mjs).
web: web-deps
	cd web && npm run build && node scripts/size.mjs

# Installs web/node_modules from the lockfile (npm ci) unless it is
# already installed from this very lockfile.
# (A shell snippet rather than a sub-make, so that `make -n test` runs nothing.)
WEB_DEPS = command -v node >/dev/null || { echo "web: Node.js 20.19+ is needed to build the UI" >&2; exit 1; }; \
	cd web && if [ node_modules/.package-lock.json -nt package-lock.json ]; then echo "web: node_modules is current"; \
	else npm ci --no-audit --no-fund; fi
web-deps:
	@$(WEB_DEPS)

# The browser end-to-end suite (web/e2e) against a binary with the UI in
# it, in headless Chromium (/usr/bin/chromium, or CHROMIUM=path).
e2e: web build
	cd web && OPSCONDUCTOR_BIN=$(CURDIR)/$(BIN)/opsconductor npm run e2e

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$(TOOLS)/staticcheck ./...
	@$(MAKE) --no-print-directory lint-extra

lint-extra: $(LINT_EXTRA)
	@:

fmt:
	gofmt -w $$(git ls-files '*.go' | grep -v '\.pb\.go$$')

clean:
	rm -rf $(BIN) .opsconductor-dev
