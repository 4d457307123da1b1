package pluginhost

import (
	"strings"
	"testing"
)

const goodSum = "dd79af825265c6ae67a91789f3a6ec56c86fb724d906a444aad0b9c65ff465c8"

func TestDecodeManifest(t *testing.T) {
	good := `{"name":"disk-usage","version":"1.2.3","os":"linux","arch":"amd64","sha256":"` + goodSum + `","binary":"disk-usage"}`
	tests := []struct {
		name, in, wantErr string
	}{
		{"a complete manifest decodes", good, ""},
		{"an unknown field is refused", strings.Replace(good, `"name"`, `"extra":1,"name"`, 1), "unknown field"},
		{"trailing data is refused", good + `{}`, "trailing data"},
		{"a binary outside its directory is refused", strings.Replace(good, `"binary":"disk-usage"`, `"binary":"../../bin/sh"`, 1), "binary:"},
		{"an absolute binary path is refused", strings.Replace(good, `"binary":"disk-usage"`, `"binary":"/bin/sh"`, 1), "binary:"},
		{"an upper-case name is refused", strings.Replace(good, `"disk-usage",`, `"Disk",`, 1), "name:"},
		{"a short version is refused", strings.Replace(good, `1.2.3`, `1.2`, 1), "version:"},
		{"build metadata is refused", strings.Replace(good, `1.2.3`, `1.2.3+abc`, 1), "version:"},
		{"a short checksum is refused", strings.Replace(good, goodSum, "abc", 1), "sha256:"},
		{"upper-case hex is refused", strings.Replace(good, goodSum, strings.ToUpper(goodSum), 1), "sha256:"},
		{"every problem is reported at once", `{"name":"X","version":"x","os":"","arch":"","sha256":"","binary":""}`, "name:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := DecodeManifest([]byte(tt.in))
			if tt.wantErr == "" {
				if err != nil || m.Name != "disk-usage" || m.Version != "1.2.3" {
					t.Fatalf("DecodeManifest = %+v, %v", m, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
	_, err := DecodeManifest([]byte(`{"name":"X","version":"x","os":"","arch":"","sha256":"","binary":""}`))
	for _, field := range []string{"name:", "version:", "os:", "arch:", "sha256:", "binary:"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error %q does not report %s", err, field)
		}
	}
}

func FuzzDecodeManifest(f *testing.F) {
	f.Add([]byte(`{"name":"disk-usage","version":"1.2.3","os":"linux","arch":"amd64","sha256":"` + goodSum + `","binary":"disk-usage"}`))
	f.Add([]byte(`{"name":"a","version":"0.0.1-rc.1","os":"linux","arch":"arm64","sha256":"` + goodSum + `","binary":"a.exe"}`))
	f.Add([]byte(`{"binary":"../x"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeManifest(data)
		if err != nil {
			return
		}
		// Whatever decodes must be safe to join to a directory and must
		// have a version the resolver can order.
		if strings.ContainsAny(m.Binary, `/\`) || strings.Contains(m.Binary, "..") || m.Binary == "" {
			t.Fatalf("binary %q escapes its directory", m.Binary)
		}
		if _, err := ParseVersion(m.Version); err != nil {
			t.Fatalf("accepted version %q: %v", m.Version, err)
		}
		if _, err := ParseRef(m.Name + "@" + m.Version); err != nil {
			t.Fatalf("accepted %s@%s, which is no reference: %v", m.Name, m.Version, err)
		}
	})
}

func TestRefMatches(t *testing.T) {
	tests := []struct {
		ref, version string
		want         bool
	}{
		{"x@1", "1.9.0", true},
		{"x@1", "2.0.0", false},
		{"x@1", "1.2.0-rc.1", false},
		{"x@1.2", "1.2.7", true},
		{"x@1.2", "1.3.0", false},
		{"x@1.2.3", "1.2.3", true},
		{"x@1.2.3", "1.2.4", false},
		{"x@2.0.0-rc.1", "2.0.0-rc.1", true},
		{"x", "3.1.4", true},
		{"x", "3.1.4-beta", false},
	}
	for _, tt := range tests {
		t.Run(tt.ref+" against "+tt.version, func(t *testing.T) {
			r, err := ParseRef(tt.ref)
			if err != nil {
				t.Fatal(err)
			}
			v, err := ParseVersion(tt.version)
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Matches(v); got != tt.want {
				t.Errorf("Matches = %v, want %v", got, tt.want)
			}
		})
	}
	for _, bad := range []string{"", "x@", "x@01", "x@1.2.3.4", "X@1", "x@a", "x@1.2.3+b"} {
		if _, err := ParseRef(bad); err == nil {
			t.Errorf("ParseRef(%q) succeeded", bad)
		}
	}
}

func TestVersionOrder(t *testing.T) {
	// Ascending, as semver.org orders its example.
	order := []string{"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
		"1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.2.0", "1.10.0", "2.0.0"}
	for i := 1; i < len(order); i++ {
		a, b := mustVersion(order[i-1]), mustVersion(order[i])
		if a.Compare(b) >= 0 || b.Compare(a) <= 0 {
			t.Errorf("%s should sort before %s", order[i-1], order[i])
		}
	}
}
