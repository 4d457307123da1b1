package facts

import (
	"net"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestParseOSRelease(t *testing.T) {
	cases := []struct {
		name, in, id, version string
	}{
		{"quoted values are unquoted", "NAME=\"Debian GNU/Linux\"\nID=debian\nVERSION_ID=\"12\"\n", "debian", "12"},
		{"single quotes and comments are handled", "# comment\nID='ubuntu'\nVERSION_ID='24.04'\n", "ubuntu", "24.04"},
		{"a rolling release has no version", "ID=arch\n", "arch", ""},
		{"garbage yields nothing", "not a line\n=\n", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id, v := parseOSRelease(strings.NewReader(c.in))
			if id != c.id || v != c.version {
				t.Fatalf("got %q %q, want %q %q", id, v, c.id, c.version)
			}
		})
	}
}

func TestParseMemTotal(t *testing.T) {
	in := "MemTotal:       16318392 kB\nMemFree:         1234 kB\n"
	if got, want := parseMemTotal(strings.NewReader(in)), uint64(16318392*1024); got != want {
		t.Fatalf("got %d, want %d", got, want)
	}
	if got := parseMemTotal(strings.NewReader("MemFree: 1 kB\n")); got != 0 {
		t.Fatalf("missing MemTotal gave %d", got)
	}
}

func TestUsableAddressesDropsLoopbackAndLinkLocal(t *testing.T) {
	addrs := []net.Addr{
		&net.IPNet{IP: net.ParseIP("127.0.0.1")},
		&net.IPNet{IP: net.ParseIP("::1")},
		&net.IPNet{IP: net.ParseIP("fe80::1")},
		&net.IPNet{IP: net.ParseIP("10.0.0.5")},
		&net.IPAddr{IP: net.ParseIP("192.168.1.2")},
	}
	got := usableAddresses(addrs)
	if want := []string{"10.0.0.5", "192.168.1.2"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestGatherReportsThisHost(t *testing.T) {
	f := Gather()
	if f.Hostname == "" || f.Arch != runtime.GOARCH || f.Cpus < 1 {
		t.Fatalf("incomplete facts: %v", f)
	}
	if runtime.GOOS == "linux" && (f.Kernel == "" || f.MemoryBytes == 0) {
		t.Fatalf("linux facts without kernel or memory: %v", f)
	}
}
