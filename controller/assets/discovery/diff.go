package discovery

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/opsconductor/opsconductor/plugins/builtin"
)

// Diff is what changed between two scans of a profile.
type Diff struct {
	Appeared    []Host       `json:"appeared"`
	Changed     []HostChange `json:"changed"`
	Disappeared []Host       `json:"disappeared"`
}

// HostChange is one host found by both scans with different ports or
// banners.
type HostChange struct {
	Address string `json:"address"`
	Opened  []int  `json:"opened,omitempty"`
	Closed  []int  `json:"closed,omitempty"`
	// Changed are ports open in both scans whose service answered
	// differently (banner, HTTP server or title, certificate).
	Changed []PortChange `json:"changed,omitempty"`
}

// PortChange is one port's service before and after.
type PortChange struct {
	Port   int                    `json:"port"`
	Before builtin.DiscoveredPort `json:"before"`
	After  builtin.DiscoveredPort `json:"after"`
}

// Compare computes the diff from old to cur, by address.
func Compare(old, cur []Host) Diff {
	d := Diff{Appeared: []Host{}, Changed: []HostChange{}, Disappeared: []Host{}}
	before := make(map[string]Host, len(old))
	for _, h := range old {
		before[h.Address] = h
	}
	now := make(map[string]bool, len(cur))
	for _, h := range cur {
		now[h.Address] = true
		o, ok := before[h.Address]
		if !ok {
			d.Appeared = append(d.Appeared, h)
			continue
		}
		if c, changed := comparePorts(o, h); changed {
			d.Changed = append(d.Changed, c)
		}
	}
	for _, h := range old {
		if !now[h.Address] {
			d.Disappeared = append(d.Disappeared, h)
		}
	}
	for _, l := range [][]Host{d.Appeared, d.Disappeared} {
		slices.SortFunc(l, func(a, b Host) int { return compareAddr(a.Address, b.Address) })
	}
	slices.SortFunc(d.Changed, func(a, b HostChange) int { return compareAddr(a.Address, b.Address) })
	return d
}

func comparePorts(o, h Host) (HostChange, bool) {
	c := HostChange{Address: h.Address}
	op := map[int]builtin.DiscoveredPort{}
	for _, p := range o.Ports {
		op[p.Port] = p
	}
	np := map[int]bool{}
	for _, p := range h.Ports {
		np[p.Port] = true
		b, ok := op[p.Port]
		switch {
		case !ok:
			c.Opened = append(c.Opened, p.Port)
		case !samePort(b, p):
			c.Changed = append(c.Changed, PortChange{Port: p.Port, Before: b, After: p})
		}
	}
	for _, p := range o.Ports {
		if !np[p.Port] {
			c.Closed = append(c.Closed, p.Port)
		}
	}
	return c, len(c.Opened)+len(c.Closed)+len(c.Changed) > 0
}

// samePort compares what a service said. A certificate's expiry is part
// of it: a renewed certificate is a change worth seeing.
func samePort(a, b builtin.DiscoveredPort) bool {
	if a.Service != b.Service || a.Banner != b.Banner || (a.HTTP == nil) != (b.HTTP == nil) || (a.TLS == nil) != (b.TLS == nil) {
		return false
	}
	if a.HTTP != nil && *a.HTTP != *b.HTTP {
		return false
	}
	if a.TLS != nil && (a.TLS.Subject != b.TLS.Subject || a.TLS.Issuer != b.TLS.Issuer ||
		!a.TLS.NotAfter.Equal(b.TLS.NotAfter) || !slices.Equal(a.TLS.SANs, b.TLS.SANs)) {
		return false
	}
	return true
}

// compareAddr orders addresses numerically (IPv4 before IPv6); strings
// that are not addresses sort after, as text.
func compareAddr(a, b string) int {
	x, errA := netip.ParseAddr(a)
	y, errB := netip.ParseAddr(b)
	switch {
	case errA == nil && errB == nil:
		return x.Compare(y)
	case errA == nil:
		return -1
	case errB == nil:
		return 1
	}
	return strings.Compare(a, b)
}

// normalAddr is an address in canonical form, or s unchanged.
func normalAddr(s string) string {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().String()
	}
	return s
}
