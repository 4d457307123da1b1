# make bench: every figure the issues name, measured on this machine, one
# progress line per step, written to bench/report.md and bench/report.json
# (bench/report). QUICK=1 runs each step at reduced parameters (under 3
# minutes on 2 cores; figures below their target's scale are not judged).
# BENCH_ONLY=REGEXP runs only the steps whose name matches.
.PHONY: bench-deps

bench: build bench-deps
	$(GO) run ./bench/report -bin $(BIN) $(if $(QUICK),-quick) $(if $(BENCH_ONLY),-only '$(BENCH_ONLY)')

# The Ansible comparison needs Debian's ansible-core and openssh-server.
# As root they are installed here; otherwise the step is skipped and the
# report says what to install.
bench-deps:
	@if command -v ansible >/dev/null 2>&1 && [ -x /usr/sbin/sshd ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "bench: installing ansible-core and openssh-server (apt-get) for the Ansible comparison"; \
		apt-get install -y -qq ansible-core openssh-server >/dev/null 2>&1 || \
		{ apt-get update -qq && apt-get install -y -qq ansible-core openssh-server >/dev/null; }; \
	else echo "bench: ansible-core or openssh-server is missing, so the Ansible comparison is skipped (apt-get install ansible-core openssh-server)"; fi
