package audit

import (
	"bytes"
	"net/url"
	"reflect"
	"testing"
	"time"
)

// FuzzEntryDecode feeds decode what storage could hold after anyone edited
// it: it must never panic, and whatever it accepts must encode back to an
// entry that decodes to the same thing with an intact hash.
func FuzzEntryDecode(f *testing.F) {
	e, err := prepare(userEntry(1), time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC))
	if err != nil {
		f.Fatal(err)
	}
	e.Seq, e.Node, e.PrevHash = 7, "n1", ZeroHash
	good, _, err := encode(e)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(bytes.Replace(good, []byte("success"), []byte("failure"), 1))
	f.Add(good[:len(good)-3])
	f.Add([]byte(`{"seq":1,"hash":"0000000000000000000000000000000000000000000000000000000000000000"}`))
	f.Add([]byte(`{"seq":1,"hash":"1","hash":"0000000000000000000000000000000000000000000000000000000000000000"}`))
	f.Add([]byte(`{"diff":{"n":1e999},"hash":"0000000000000000000000000000000000000000000000000000000000000000"}`))
	f.Add([]byte(`[],"hash":"0000000000000000000000000000000000000000000000000000000000000000"}`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		e, _, err := decode(data)
		if err != nil {
			return
		}
		out, h, err := encode(e)
		if err != nil {
			// Decoded numbers encoding/json cannot write back are the only
			// excuse, and they are never in what encode wrote.
			return
		}
		again, computed, err := decode(out)
		if err != nil || computed != h || again.Hash != h {
			t.Fatalf("re-encoded entry does not decode with its hash: %v\n%s", err, out)
		}
		e.Hash, again.Hash = "", ""
		if !reflect.DeepEqual(e, again) {
			t.Fatalf("round trip changed the entry:\n%+v\n%+v", e, again)
		}
	})
}

// FuzzParseFilter feeds the API's query string to ParseFilter: never a
// panic, and what it accepts is a valid filter.
func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{
		"", "actor=alice&action=user.create&resource=user%2Fbob&outcome=denied&node=ctl-1&actor_type=token",
		"since=2026-11-01T00:00:00Z&until=2026-11-02T00:00:00Z&limit=50&cursor=abc",
		"since=2026-11-02T00:00:00Z&until=2026-11-01T00:00:00Z", "limit=-1", "limit=x", "outcome=maybe", "actor=a&actor=b",
		"bogus=1", "actor=%00", "since=yesterday",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		fl, err := ParseFilter(q)
		if err != nil {
			return
		}
		if err := fl.Validate(); err != nil {
			t.Fatalf("accepted an invalid filter %+v: %v", fl, err)
		}
	})
}
