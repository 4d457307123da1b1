// Command discovery measures the discover step on loopback: 127.0.0.0/24
// × 10 ports at the default rate ceiling, with a few services listening
// (an SSH-style banner, HTTP, and a silent port) so that banner grabbing is
// part of the time. It runs the step as the agent does, in process.
//
//	go run ./bench/discovery [-runs 3]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/opsconductor/opsconductor/bench/internal/figure"
	"github.com/opsconductor/opsconductor/plugins/builtin"
	"github.com/opsconductor/opsconductor/plugins/sdk"
)

func main() {
	runs := flag.Int("runs", 3, "scans to time")
	jsonPath := flag.String("json", "", "also write the figures as JSON to this file (for bench/report)")
	flag.Parse()
	if err := run(*runs, *jsonPath); err != nil {
		fmt.Fprintln(os.Stderr, "bench/discovery:", err)
		os.Exit(1)
	}
}

// listen serves on 127.0.0.1 with handle per connection; it returns the
// port.
func listen(handle func(net.Conn)) (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); handle(c) }()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

type counter struct{ hosts int }

func (c *counter) Write(p []byte) (int, error) {
	for _, l := range strings.Split(string(p), "\n") {
		if strings.HasPrefix(l, builtin.DiscoverHostPrefix) {
			c.hosts++
		}
	}
	return len(p), nil
}

type out struct{ c *counter }

func (o out) Stdout() io.Writer { return o.c }
func (o out) Stderr() io.Writer { return io.Discard }

func run(runs int, jsonPath string) error {
	var ports []string
	ssh, err := listen(func(c net.Conn) { io.WriteString(c, "SSH-2.0-bench_1.0\r\n"); c.Read(make([]byte, 1)) })
	if err != nil {
		return err
	}
	httpPort, err := listen(func(c net.Conn) {
		c.Read(make([]byte, 4096))
		io.WriteString(c, "HTTP/1.1 200 OK\r\nServer: bench\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n<title>bench</title>")
	})
	if err != nil {
		return err
	}
	silent, err := listen(func(c net.Conn) { c.SetDeadline(time.Now().Add(5 * time.Second)); c.Read(make([]byte, 1)) })
	if err != nil {
		return err
	}
	ports = append(ports, strconv.Itoa(ssh), strconv.Itoa(httpPort), strconv.Itoa(silent))
	// Seven closed ports make ten.
	for len(ports) < 10 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		ports = append(ports, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
		ln.Close()
	}
	params, err := json.Marshal(map[string]any{"cidrs": []string{"127.0.0.0/24"}, "ports": ports, "resolve": false})
	if err != nil {
		return err
	}
	var took []time.Duration
	for i := 0; i < runs; i++ {
		c := &counter{}
		start := time.Now()
		res, err := builtin.Discover{}.Run(context.Background(), sdk.Request{AttemptID: "bench", Params: params}, out{c})
		if err != nil {
			return err
		}
		d := time.Since(start)
		took = append(took, d)
		fmt.Printf("run %d: %s, %s probes, %d hosts up (%s open ports)\n", i+1, d.Round(time.Millisecond), res.Outputs["probes"], c.hosts, res.Outputs["open_ports"])
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	med := took[len(took)/2]
	verdict := "meets"
	if med > 10*time.Second {
		verdict = "misses"
	}
	fmt.Printf("\n| scan | median | target |\n|---|---|---|\n| 127.0.0.0/24 × 10 ports at %d/s | %s | %s ≤ 10 s |\n",
		builtin.DiscoverDefaultRate, med.Round(time.Millisecond), verdict)
	return figure.Write(jsonPath, []figure.Figure{
		figure.New("discovery of 127.0.0.0/24 × 10 ports, median", med.Seconds(), "s", figure.AtMost(10)).
			WithNote("%d scans at the default %d probes/s", runs, builtin.DiscoverDefaultRate),
	})
}
