# `make release`: the controller and the agent for every platform in
# RELEASE_PLATFORMS, built as `make build` builds them (static, -trimpath,
# grpcnotrace) with the version, commit and commit date stamped in, a
# CycloneDX SBOM per binary and a SHA256SUMS file, all in dist/.
#
# A controller started with --release-dir dist serves the Linux agents and
# their checksums to the install script (GET /install/agent.sh).
#
#   RELEASE_UI=0  release a controller without the web UI (no Node.js needed)
#   SBOM=0        skip the SBOMs (cyclonedx-gomod comes from the Go module proxy)

.PHONY: release release-lint

DIST              := dist
RELEASE_PLATFORMS := linux/amd64 linux/arm64 darwin/arm64
RELEASE_PROGRAMS  := opsconductor opsconductor-agent
RELEASE_UI        ?= 1
SBOM              ?= 1
CYCLONEDX_GOMOD_VERSION := v1.10.0

BUILDINFO_PKG := github.com/opsconductor/opsconductor/internal/buildinfo
COMMIT        := $(shell git rev-parse HEAD 2>/dev/null)
SHORT_COMMIT  := $(shell git rev-parse --short=12 HEAD 2>/dev/null)
# The commit's time, not the clock's: building one commit twice gives the
# same bytes, so anyone can check a release against its source.
BUILD_DATE    := $(shell TZ=UTC git show -s --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ HEAD 2>/dev/null)
# The SBOM tool reads the build's tags from GOFLAGS, which wants -tags=x.
SBOM_GOFLAGS  := $(subst -tags ,-tags=,$(BUILDFLAGS))
RELEASE_LDFLAGS := $(LDFLAGS) -X $(BUILDINFO_PKG).commit=$(COMMIT) -X $(BUILDINFO_PKG).date=$(BUILD_DATE)

release:
	@if [ "$(RELEASE_UI)" = 0 ]; then echo "release: RELEASE_UI=0: the controller is built without the web UI"; \
	elif command -v node >/dev/null; then $(MAKE) --no-print-directory web; \
	else echo "release: Node.js 20.19+ is needed to build the web UI into the controller (or RELEASE_UI=0 to release without it)" >&2; exit 1; fi
	@if [ "$(SBOM)" != 0 ]; then \
		GOBIN=$(TOOLS) $(GO) install github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@$(CYCLONEDX_GOMOD_VERSION) || \
		{ echo "release: cannot install cyclonedx-gomod $(CYCLONEDX_GOMOD_VERSION) for the SBOMs (or SBOM=0 to release without them)" >&2; exit 1; }; \
	fi
	rm -rf $(DIST) && mkdir -p $(DIST)
	@set -e; for p in $(RELEASE_PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; \
		for prog in $(RELEASE_PROGRAMS); do \
			out=$(DIST)/$${prog}_$${os}_$${arch}; echo "release: $$out"; \
			GOOS=$$os GOARCH=$$arch CGO_ENABLED=0 $(GO) build $(BUILDFLAGS) -ldflags '$(RELEASE_LDFLAGS)' -o $$out ./cmd/$$prog; \
			if [ "$(SBOM)" != 0 ]; then \
				GOOS=$$os GOARCH=$$arch CGO_ENABLED=0 GOFLAGS='$(SBOM_GOFLAGS)' $(TOOLS)/cyclonedx-gomod app -json -licenses \
					-noserial -notimestamp -output $$out.cdx.json -main cmd/$$prog . 2>$(DIST)/.sbom.log || \
					{ grep -v 'no licenses detected' $(DIST)/.sbom.log >&2; exit 1; }; \
			fi; \
		done; \
	done
	rm -f $(DIST)/.sbom.log
	cd $(DIST) && sha256sum -- * > SHA256SUMS
	@# The binary for this machine must say what it is: a missing stamp
	@# would ship a release that reports itself as "dev".
	@host=$(DIST)/opsconductor-agent_$$($(GO) env GOOS)_$$($(GO) env GOARCH); \
	if [ -x $$host ]; then v=$$($$host version); echo "release: $$v"; \
		case "$$v" in *" $(VERSION) ($(if $(SHORT_COMMIT),commit $(SHORT_COMMIT))"*) ;; \
		*) echo "release: $$host does not report version $(VERSION) and commit $(COMMIT)" >&2; exit 1;; esac; \
	fi
	@echo "release: $(VERSION) in $(DIST)/ (SHA256SUMS lists every file)"

# The install script the controller serves is POSIX sh: shellcheck holds it
# to that (Debian package shellcheck; skipped with a note when missing).
INSTALL_SCRIPT := controller/install/agent.sh
release-lint:
	@if command -v shellcheck >/dev/null; then shellcheck --shell=sh --severity=style $(INSTALL_SCRIPT) && echo "release-lint: $(INSTALL_SCRIPT) passes shellcheck"; \
	else echo "release-lint: shellcheck is not installed (apt-get install -y shellcheck): $(INSTALL_SCRIPT) not checked"; fi

LINT_EXTRA += release-lint
