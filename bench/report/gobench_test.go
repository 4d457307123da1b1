package main

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseBench(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []benchResult
		wantErr string
	}{
		{
			name: "custom metrics and the package they ran in are kept, the procs suffix dropped",
			in: `goos: linux
pkg: github.com/x/controller/cluster
BenchmarkApply/nodes=3/writers=16-2   	   20000	     91234 ns/op	      5120 cmds/s	         3.5 p99-ms
PASS
ok  	github.com/x/controller/cluster	12.3s
`,
			want: []benchResult{{Pkg: "github.com/x/controller/cluster", Name: "BenchmarkApply/nodes=3/writers=16", N: 20000,
				Metrics: map[string]float64{"ns/op": 91234, "cmds/s": 5120, "p99-ms": 3.5}}},
		},
		{
			name: "a benchmark's log lines are not results",
			in: `pkg: p
BenchmarkTail1000: bench_test.go:12: writing 1M records
BenchmarkTail1000/records=1M-2 	 100	 1.5 p99-ms
`,
			want: []benchResult{{Pkg: "p", Name: "BenchmarkTail1000/records=1M", N: 100, Metrics: map[string]float64{"p99-ms": 1.5}}},
		},
		{
			name: "a name whose last dash is not a procs count stays whole",
			in:   "BenchmarkAttempt/plugin-warm 5 1 p50-ms\n",
			want: []benchResult{{Name: "BenchmarkAttempt/plugin-warm", N: 5, Metrics: map[string]float64{"p50-ms": 1}}},
		},
		{
			name:    "a value that is not a number is an error naming the line",
			in:      "BenchmarkX-2 10 fast ns/op\n",
			wantErr: "line 1",
		},
		{
			name:    "an unpaired value is an error",
			in:      "BenchmarkX-2 10 5 ns/op 7\n",
			wantErr: "do not pair up",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseBench([]byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// FuzzParseBench holds the parser to two properties on any input: it does
// not panic, and every result it returns has a name and paired metrics.
func FuzzParseBench(f *testing.F) {
	f.Add("pkg: a/b\nBenchmarkA/x=1-2 \t 10 \t 5 ns/op \t 3.5 p99-ms\nPASS\n")
	f.Add("BenchmarkB 1 1e3 MB/s\n")
	f.Add("BenchmarkC-2 x y\n")
	f.Add("Benchmark-2 1\n")
	f.Add("pkg: \nBenchmark\n")
	f.Fuzz(func(t *testing.T, in string) {
		res, err := parseBench([]byte(in))
		if err != nil {
			return
		}
		for _, r := range res {
			if !strings.HasPrefix(r.Name, "Benchmark") {
				t.Errorf("result named %q", r.Name)
			}
			_ = r.sub()
			_ = r.backend()
		}
	})
}
