package tmpl

import (
	"context"
	"testing"
)

// The delivery worker renders once per delivery; these show the cost per
// channel kind against the webhook target of 500 deliveries/s.
func BenchmarkRenderBuiltin(b *testing.B) {
	for _, kind := range []ChannelKind{ChannelWebhook, ChannelChat, ChannelEmail} {
		b.Run(string(kind), func(b *testing.B) {
			c, err := Compile(Builtin(EventRunFailed, kind))
			if err != nil {
				b.Fatal(err)
			}
			e := Sample(EventRunFailed)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Render(ctx, e); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
