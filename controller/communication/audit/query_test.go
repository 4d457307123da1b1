package audit

import (
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/problem"
)

func TestParseFilter(t *testing.T) {
	tests := []struct {
		name       string
		query      string
		want       Filter
		wantFields []string // the parameters the problems name, sorted
	}{
		{"an empty query matches everything", "", Filter{}, nil},
		{"every parameter is read",
			"actor=alice&actor_type=user&action=user.create&resource=user%2Fbob&outcome=denied&node=ctl-1" +
				"&since=2026-11-01T00:00:00Z&until=2026-11-02T00:00:00%2B01:00&cursor=abc&limit=50",
			Filter{Actor: "alice", ActorType: ActorUser, Action: "user.create", Resource: "user/bob", Outcome: OutcomeDenied,
				Node: "ctl-1", Since: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
				Until: time.Date(2026, 11, 1, 23, 0, 0, 0, time.UTC), Cursor: "abc", Limit: 50}, nil},
		{"every bad parameter is named at once",
			"actor=a&actor=b&outcome=maybe&actor_type=robot&limit=x&since=yesterday&bogus=1",
			Filter{}, []string{"actor", "actor_type", "bogus", "limit", "outcome", "since"}},
		{"values the parse accepts are then validated together",
			"outcome=maybe&actor_type=robot&limit=20000&since=2026-11-02T00:00:00Z&until=2026-11-01T00:00:00Z",
			Filter{}, []string{"actor_type", "limit", "outcome", "since"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			f, err := ParseFilter(q)
			if tc.wantFields == nil {
				if err != nil {
					t.Fatal(err)
				}
				if !f.Since.Equal(tc.want.Since) || !f.Until.Equal(tc.want.Until) {
					t.Fatalf("times %v %v, want %v %v", f.Since, f.Until, tc.want.Since, tc.want.Until)
				}
				f.Since, f.Until, tc.want.Since, tc.want.Until = time.Time{}, time.Time{}, time.Time{}, time.Time{}
				if f != tc.want {
					t.Fatalf("got %+v\nwant %+v", f, tc.want)
				}
				return
			}
			p, ok := problem.As(err)
			if !ok || p.Kind != problem.KindInvalid {
				t.Fatalf("error %v is not a problem", err)
			}
			fields := []string{p.Field}
			if len(p.Details) > 0 {
				fields = fields[:0]
				for _, d := range p.Details {
					fields = append(fields, d.Field)
				}
			}
			slices.Sort(fields)
			if !slices.Equal(fields, tc.wantFields) {
				t.Fatalf("problems name %q, want %q (%v)", fields, tc.wantFields, err)
			}
		})
	}
}
