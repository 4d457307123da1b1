package main

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// benchResult is one line of `go test -bench` output: the benchmark's
// name without its -GOMAXPROCS suffix, the package it ran in, and every
// value it reported keyed by unit (ns/op, MB/s and b.ReportMetric's).
type benchResult struct {
	Pkg     string
	Name    string
	N       int
	Metrics map[string]float64
}

// parseBench reads `go test -bench` output. Lines other than results
// (test logs, PASS, ok) are skipped; a result line that does not parse is
// an error naming the line, since a silently dropped row would read as
// a benchmark that never ran.
func parseBench(out []byte) ([]benchResult, error) {
	var res []benchResult
	pkg := ""
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if p, ok := strings.CutPrefix(text, "pkg: "); ok {
			pkg = strings.TrimSpace(p)
			continue
		}
		fields := strings.Fields(text)
		if len(fields) < 2 || !strings.HasPrefix(fields[0], "Benchmark") {
			continue
		}
		n, err := strconv.Atoi(fields[1])
		if err != nil {
			// A benchmark's own log line ("BenchmarkX: waiting…") or
			// its name printed before a failure: not a result.
			continue
		}
		if len(fields)%2 != 0 {
			return nil, fmt.Errorf("line %d: %q: values and units do not pair up", line, text)
		}
		r := benchResult{Pkg: pkg, Name: trimProcs(fields[0]), N: n, Metrics: map[string]float64{}}
		for i := 2; i < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				return nil, fmt.Errorf("line %d: %q: value %q: %w", line, text, fields[i], err)
			}
			r.Metrics[fields[i+1]] = v
		}
		res = append(res, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read benchmark output: %w", err)
	}
	return res, nil
}

// trimProcs drops the -GOMAXPROCS suffix go test appends to a name.
func trimProcs(name string) string {
	i := strings.LastIndexByte(name, '-')
	if i < 0 {
		return name
	}
	if _, err := strconv.Atoi(name[i+1:]); err != nil {
		return name
	}
	return name[:i]
}

// sub is the part of a benchmark's name after its top-level name
// ("nodes=3/writers=16" of "BenchmarkApply/nodes=3/writers=16").
func (r benchResult) sub() string {
	_, s, _ := strings.Cut(r.Name, "/")
	return s
}

// backend is the last element of the result's package path (embedded,
// postgres).
func (r benchResult) backend() string {
	return r.Pkg[strings.LastIndexByte(r.Pkg, '/')+1:]
}
