// Package facts gathers what an agent reports about its host: hostname,
// operating system, kernel, architecture, CPUs, memory and addresses. It
// reads /etc/os-release, /proc/meminfo and uname without cgo, and never
// fails as a whole: a fact it cannot read is left empty, because a host
// with an odd /etc must still be able to enrol and run steps.
package facts

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	agentv1 "github.com/opsconductor/opsconductor/proto/agent/v1"
)

// Gather reads the local host's facts.
func Gather() *agentv1.Facts {
	f := &agentv1.Facts{
		Arch: runtime.GOARCH,
		Cpus: int32(runtime.NumCPU()),
		Os:   runtime.GOOS,
	}
	f.Hostname, _ = os.Hostname()
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		id, version := parseOSRelease(bytes.NewReader(b))
		if id != "" {
			f.Os = id
		}
		f.OsVersion = version
	}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err == nil {
		f.Kernel = unix.ByteSliceToString(uts.Release[:])
	}
	if fh, err := os.Open("/proc/meminfo"); err == nil {
		f.MemoryBytes = parseMemTotal(fh)
		fh.Close()
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		f.Addresses = usableAddresses(addrs)
	}
	return f
}

// parseOSRelease returns ID and VERSION_ID from an os-release file
// (freedesktop.org format: KEY=value, values optionally quoted).
func parseOSRelease(r io.Reader) (id, version string) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		if u, err := strconv.Unquote(v); err == nil {
			v = u
		} else {
			v = strings.Trim(v, `"'`)
		}
		switch k {
		case "ID":
			id = v
		case "VERSION_ID":
			version = v
		}
	}
	return id, version
}

// parseMemTotal returns MemTotal from /proc/meminfo in bytes (the file
// reports kB, meaning KiB), or 0.
func parseMemTotal(r io.Reader) uint64 {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			n, err := strconv.ParseUint(fields[1], 10, 64)
			if err != nil {
				return 0
			}
			if len(fields) >= 3 && strings.EqualFold(fields[2], "kB") {
				n *= 1024
			}
			return n
		}
	}
	return 0
}

// usableAddresses keeps the addresses other hosts could reach: no
// loopback, no link-local; sorted so that unchanged facts compare equal.
func usableAddresses(addrs []net.Addr) []string {
	var out []string
	for _, a := range addrs {
		var ip net.IP
		switch v := a.(type) {
		case *net.IPNet:
			ip = v.IP
		case *net.IPAddr:
			ip = v.IP
		default:
			continue
		}
		if ip == nil || ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsUnspecified() {
			continue
		}
		out = append(out, ip.String())
	}
	sort.Strings(out)
	return out
}
