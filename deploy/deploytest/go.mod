module github.com/opsconductor/opsconductor/deploy/deploytest

go 1.26.8

require (
	github.com/coreos/go-systemd/v22 v22.7.0
	mvdan.cc/sh/v3 v3.14.1
)
