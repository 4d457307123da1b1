# The chaos suite (issue 11): a three-controller cluster with a private
# PostgreSQL and 50 agent processes under a seeded storm of kills, link cuts
# and database restarts, then checks that no run, step or log line was lost
# or doubled, that the replicas agree and that nothing leaked. It prints the
# seed; CHAOS_SEED=N replays that fault schedule, CHAOS_DURATION sets the
# fault period (CI runs `make chaos CHAOS_DURATION=60s`, about 80 s in all).
# It runs as root or as a user that can run PostgreSQL's binaries itself.
CHAOS_DURATION ?= 5m
CHAOS_SEED ?=

.PHONY: chaos
chaos: build
	$(GO) build -o $(BIN)/chaos ./test/chaos
	CHAOS_DURATION=$(CHAOS_DURATION) CHAOS_SEED=$(CHAOS_SEED) $(BIN)/chaos -bin $(BIN)
