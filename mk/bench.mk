# Benchmarks and load drivers; prints a table of the figures the issues name.
bench: build
	OPSCONDUCTOR_BIN=$(CURDIR)/$(BIN)/opsconductor bash bench/run.sh
