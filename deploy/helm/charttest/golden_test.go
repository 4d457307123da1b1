package charttest

import (
	"encoding/base64"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.yaml from the current chart")

// TestGoldenRender keeps the whole rendered output in testdata, so that a
// chart change shows in review as the change to what Kubernetes is given.
// Generated secret values differ on every render and are masked.
func TestGoldenRender(t *testing.T) {
	for _, c := range []struct {
		file string
		sets []string
	}{
		{"defaults.golden.yaml", []string{historyDSN}},
		{"agents.golden.yaml", []string{"history.existingSecret=pg", "tls.existingSecret=oc-ca", "keyring.existingSecret=oc-keys",
			"admin.existingSecret=oc-admin", "agent.enabled=true", "agent.joinSecret=join"}},
	} {
		t.Run(c.file, func(t *testing.T) {
			r := must(t, values(t, c.sets...))
			got := r.manifest
			for _, name := range sortedKeys(r.secrets) {
				if strings.HasSuffix(name, "-history") {
					continue // from the values: stable
				}
				for key, v := range r.secrets[name].Data {
					got = strings.ReplaceAll(got, base64.StdEncoding.EncodeToString(v), "GENERATED-"+strings.ToUpper(key))
				}
			}
			got += "\n# NOTES.txt\n" + "# " + strings.ReplaceAll(strings.TrimSpace(r.notes), "\n", "\n# ") + "\n"
			path := filepath.Join("testdata", c.file)
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run TestGoldenRender -update to create it)", err)
			}
			if string(want) != got {
				t.Errorf("render differs from %s (run go test -run TestGoldenRender -update and review the diff):\n%s", path, firstDiff(string(want), got))
			}
		})
	}
}

// firstDiff shows the first differing line with a little context.
func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return "line " + strconv.Itoa(i+1) + ":\n- " + x + "\n+ " + y
		}
	}
	return "(identical lines; trailing difference)"
}
