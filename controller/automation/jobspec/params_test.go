package jobspec

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
)

const paramsJob = `
name: p
targets: {all: true}
params:
  - {name: service, default: nginx, pattern: "^[a-z]+$"}
  - {name: batch, type: integer, default: 2, min: 1, max: 10}
  - {name: ratio, type: number, max: 1}
  - {name: dry_run, type: boolean, default: false}
  - {name: hosts, type: array}
  - {name: extra, type: object}
  - {name: level, enum: [debug, info], default: info}
  - {name: version, required: true}
  - {name: token, secret: true, pattern: "^tok-"}
steps: [{id: a, uses: noop}]
`

func TestResolveParams(t *testing.T) {
	tests := []struct {
		name    string
		in      map[string]any
		want    map[string]any
		wantErr []string
	}{
		{
			name: "defaults fill what was not given",
			in:   map[string]any{"version": "1.2"},
			want: map[string]any{"service": "nginx", "batch": 2, "dry_run": false, "level": "info", "version": "1.2"},
		},
		{
			name: "strings from the command line become the declared types",
			in: map[string]any{"version": "1", "batch": "5", "ratio": "0.25", "dry_run": "true",
				"hosts": `["a","b"]`, "extra": `{"k": 1}`, "token": "tok-1"},
			want: map[string]any{"service": "nginx", "batch": 5, "ratio": 0.25, "dry_run": true, "level": "info",
				"hosts": []any{"a", "b"}, "extra": map[string]any{"k": 1}, "version": "1", "token": "tok-1"},
		},
		{
			name: "numbers from a JSON body become int for integers",
			in:   map[string]any{"version": "1", "batch": float64(3), "ratio": json.Number("0.5")},
			want: map[string]any{"service": "nginx", "batch": 3, "ratio": 0.5, "dry_run": false, "level": "info", "version": "1"},
		},
		{
			name: "every problem is named by its parameter",
			in: map[string]any{"batch": "11", "ratio": "lots", "dry_run": "maybe", "hosts": "a,b", "level": "warn",
				"service": "Nginx", "surprise": 1, "token": "secret-value"},
			wantErr: []string{
				"params.surprise: unknown parameter",
				"params.service: must match the pattern ^[a-z]+$",
				"params.batch: must be <= 10",
				`params.ratio: must be a number, not "lots"`,
				`params.dry_run: must be true or false, not "maybe"`,
				`params.hosts: must be a list (JSON on the command line), not "a,b"`,
				"params.level: must be one of debug, info",
				"params.version: required",
				"params.token: must match the pattern ^tok-",
			},
		},
		{
			name:    "integers refuse fractions",
			in:      map[string]any{"version": "1", "batch": 2.5},
			wantErr: []string{"params.batch: must be an integer, not a number"},
		},
	}
	j := mustParse(t, paramsJob)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := j.ResolveParams(tt.in)
			if tt.wantErr != nil {
				if gotErr := problems(t, err); !slices.Equal(gotErr, tt.wantErr) {
					t.Errorf("problems:\n got %q\nwant %q", gotErr, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ResolveParams =\n%#v\nwant\n%#v", got, tt.want)
			}
		})
	}
}

func TestResolveParamsNeverEchoesASecret(t *testing.T) {
	j := mustParse(t, "name: p\nparams: [{name: pin, type: integer, secret: true}]\nsteps: [{id: a, uses: noop}]\n")
	_, err := j.ResolveParams(map[string]any{"pin": "hunter2"})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("err = %v", err)
	}
	if err.Error() != "params.pin: is not a valid integer" {
		t.Errorf("err = %v", err)
	}
	got, err := j.ResolveParams(map[string]any{"pin": "1234"})
	if err != nil {
		t.Fatal(err)
	}
	if s := j.SecretParams(got); !slices.Equal(s, []string{"1234"}) {
		t.Errorf("SecretParams = %q", s)
	}
}

func TestResolveParamsCopiesListDefaults(t *testing.T) {
	j := mustParse(t, "name: p\nparams: [{name: hosts, type: array, default: [a, b]}]\nsteps: [{id: a, uses: noop}]\n")
	got, err := j.ResolveParams(nil)
	if err != nil {
		t.Fatal(err)
	}
	got["hosts"].([]any)[0] = "changed"
	if j.Params[0].Default.([]any)[0] != "a" {
		t.Error("changing a run's parameters changed the job's default")
	}
}
