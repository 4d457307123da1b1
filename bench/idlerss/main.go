// Command idlerss measures the resident memory of a single-node
// controller at rest: `opsconductor server` on a fresh data dir, ready,
// then left idle for -idle before VmRSS is read. `make bench` runs it for
// issue 2's figure (target <= 60 MB).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/opsconductor/opsconductor/bench/internal/figure"
	"github.com/opsconductor/opsconductor/bench/internal/serverproc"
)

const targetMB = 60

func main() {
	bin := flag.String("bin", "bin/opsconductor", "controller binary (make build)")
	idle := flag.Duration("idle", 10*time.Second, "time at rest after ready before the RSS is read")
	jsonPath := flag.String("json", "", "also write the figures as JSON to this file (for bench/report)")
	flag.Parse()
	if err := run(*bin, *idle, *jsonPath); err != nil {
		fmt.Fprintln(os.Stderr, "idlerss:", err)
		os.Exit(1)
	}
}

func run(bin string, idle time.Duration, jsonPath string) error {
	dir, err := os.MkdirTemp("", "idlerss-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv, err := serverproc.Start(serverproc.Config{Bin: bin, Dir: dir, Args: []string{"--log-level", "warn"}})
	if err != nil {
		return err
	}
	defer srv.Stop(10 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := srv.WaitReady(ctx); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "ready; idle for %s…\n", idle)
	time.Sleep(idle) // idle on purpose: this measures the resting footprint
	m, err := serverproc.ReadMemory(srv.Pid())
	if err != nil {
		return err
	}
	rss := float64(m.RSSKB) / 1024
	f := figure.New("idle controller RSS, single node", rss, "MB", figure.AtMost(targetMB)).
		WithNote("%s after ready; peak %.0f MB", idle, float64(m.PeakKB)/1024)
	fmt.Println("| figure | value | target |")
	fmt.Println("|---|---|---|")
	fmt.Printf("| idle RSS, single node (%s after ready) | %.1f MB (peak %.0f MB) | <= %d MB: %s |\n", idle, rss, float64(m.PeakKB)/1024, targetMB, f.Verdict)
	return figure.Write(jsonPath, []figure.Figure{f})
}
