package runner

import (
	"strings"
	"testing"
)

func TestDecodeParams(t *testing.T) {
	cases := []struct {
		name, in, wantErr string
	}{
		{"argv alone is accepted", `{"argv":["ls","-l"]}`, ""},
		{"a shell command with env and dir is accepted", `{"shell":"echo $X","env":{"X":"1"},"dir":"/tmp"}`, ""},
		{"both argv and shell are refused", `{"argv":["ls"],"shell":"ls"}`, "either argv or shell"},
		{"neither argv nor shell is refused", `{"env":{}}`, "one of argv or shell is required"},
		{"an empty argv is refused", `{"argv":[]}`, "argv: must name a program"},
		{"an empty program is refused", `{"argv":[""]}`, "argv[0]: empty program name"},
		{"an empty shell command is refused", `{"shell":"  "}`, "shell: empty command"},
		{"a relative dir is refused", `{"argv":["ls"],"dir":"tmp"}`, `dir: "tmp" is not an absolute path`},
		{"a bad env name is refused", `{"argv":["ls"],"env":{"A=B":"1"}}`, `env["A=B"]: invalid variable name`},
		{"an unknown field is refused", `{"argv":["ls"],"user":"root"}`, `unknown field "user"`},
		{"a wrongly typed field is refused", `{"argv":"ls"}`, "argv"},
		{"trailing data is refused", `{"argv":["ls"]} {}`, "trailing data"},
		{"not JSON is refused", `ls -l`, "params:"},
		{"every problem is reported at once", `{"argv":["", "a\u0000"],"dir":"x"}`, "argv[0]: empty program name; argv[1]: contains a NUL byte; dir:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := DecodeParams([]byte(c.in))
			if c.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("err = %v, want %q", err, c.wantErr)
			}
		})
	}
}

func FuzzDecodeParams(f *testing.F) {
	for _, s := range []string{
		`{"argv":["ls","-l"]}`, `{"shell":"echo hi","env":{"A":"b"},"dir":"/"}`,
		`{"argv":["ls"],"shell":"ls"}`, `{}`, `[]`, `null`, `{"argv":null,"shell":null}`,
		`{"argv":[""]}`, `{"env":{"":""},"shell":"x"}`, `{"argv":["a"]}garbage`, ``, `{"shell":"\u0000"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeParams(b)
		if err != nil {
			if c.Shell != "" || c.Argv != nil {
				t.Fatalf("error with a command: %v %+v", err, c)
			}
			return
		}
		if (len(c.Argv) > 0) == (c.Shell != "") {
			t.Fatalf("accepted %q as %+v: want exactly one of argv or shell", b, c)
		}
		if len(c.Argv) > 0 && c.Argv[0] == "" {
			t.Fatalf("accepted an empty program: %q", b)
		}
	})
}
