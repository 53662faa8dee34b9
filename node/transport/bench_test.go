package transport

// Benchmarks of the transports alone (no session, no sealing), each beside
// the raw connection it wraps, measured in the same run. With the session
// benchmarks of node/session they split the cost of a Tier 3 echo into
// what the session adds and what the transport adds:
//
//	go test -run='^$' -bench=. -benchmem ./node/transport/
//
// Echo benchmarks report frames/s (round trips per second) and the p50/p99
// round-trip latency in microseconds.

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/myclerk/myclerk-bridge/node/transport/natstest"
	"github.com/myclerk/myclerk-bridge/node/transport/transporttest"
	"github.com/nats-io/nats.go"
)

const benchFrame = 1 << 10 // 1 KiB, the size the goals are set at

func benchReportLatency(b *testing.B, lat []time.Duration) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	b.ReportMetric(us(lat[len(lat)/2]), "p50-us")
	b.ReportMetric(us(lat[len(lat)*99/100]), "p99-us")
}

// benchEcho runs b.N round trips of an n-byte frame through roundTrip.
func benchEcho(b *testing.B, n int, roundTrip func(p []byte) (int, error)) {
	p := make([]byte, n)
	lat := make([]time.Duration, 0, 4096)
	b.SetBytes(int64(n))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		got, err := roundTrip(p)
		if err != nil {
			b.Fatal(err)
		}
		if got != n {
			b.Fatalf("echo of %d bytes, want %d", got, n)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	benchReportLatency(b, lat)
}

// serveConnEcho writes every frame read on c back to it.
func serveConnEcho(c Conn) {
	ctx := context.Background()
	for {
		b, err := c.ReadFrame(ctx)
		if err != nil {
			return
		}
		if c.WriteFrame(ctx, b) != nil {
			return
		}
	}
}

// BenchmarkTransportEchoTCP: a 1 KiB echo over Stream (ReadFrame and
// WriteFrame with a background context) against the same framing written
// by hand on the bare net.Conn.
func BenchmarkTransportEchoTCP(b *testing.B) {
	sc, ss := transporttest.LoopbackTCP(b)
	s := NewStream(sc)
	go serveConnEcho(NewStream(ss))
	rc, rs := transporttest.LoopbackTCP(b)
	r := transporttest.NewFramed(rc)
	go transporttest.NewFramed(rs).Echo()
	ctx := context.Background()
	b.Run("stream/1KiB", func(b *testing.B) {
		benchEcho(b, benchFrame, func(p []byte) (int, error) {
			if err := s.WriteFrame(ctx, p); err != nil {
				return 0, err
			}
			got, err := s.ReadFrame(ctx)
			return len(got), err
		})
	})
	b.Run("raw-tcp/1KiB", func(b *testing.B) {
		benchEcho(b, benchFrame, func(p []byte) (int, error) {
			if err := r.Write(p); err != nil {
				return 0, err
			}
			got, err := r.Read()
			return len(got), err
		})
	})
}

// BenchmarkTransportEchoNATS: a 1 KiB echo over NATSConn (DialNATS and
// ListenNATS, the acceptor in its own goroutine) against raw nats.go
// publish with a reply subject answered by a subscription callback, on the
// same embedded server.
func BenchmarkTransportEchoNATS(b *testing.B) {
	e := natstest.Start(b, "127.0.0.1:0")
	var err error
	var cli, hub *nats.Conn
	for _, nc := range []**nats.Conn{&cli, &hub} {
		if *nc, err = nats.Connect(e.URL()); err != nil {
			b.Fatal(err)
		}
		b.Cleanup((*nc).Close)
	}
	l, err := ListenNATS(hub, "fam", "hub")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	d, err := DialNATS(cli, "fam", "pi", "hub")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The acceptor's connection appears with the dialer's first frame.
	if err := d.WriteFrame(ctx, []byte("hello")); err != nil {
		b.Fatal(err)
	}
	a, err := l.Accept(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { a.Close() })
	if _, err := a.ReadFrame(ctx); err != nil {
		b.Fatal(err)
	}
	go serveConnEcho(a)

	const subject = "bench.raw.echo"
	hs, err := hub.Subscribe(subject, func(m *nats.Msg) { m.Respond(m.Data) })
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { hs.Unsubscribe() })
	inbox := cli.NewRespInbox()
	sub, err := cli.SubscribeSync(inbox)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sub.Unsubscribe() })
	if err := hub.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := cli.Flush(); err != nil {
		b.Fatal(err)
	}

	bg := context.Background()
	b.Run("natsconn/1KiB", func(b *testing.B) {
		benchEcho(b, benchFrame, func(p []byte) (int, error) {
			if err := d.WriteFrame(bg, p); err != nil {
				return 0, err
			}
			got, err := d.ReadFrame(bg)
			return len(got), err
		})
	})
	b.Run("raw/1KiB", func(b *testing.B) {
		m := &nats.Msg{Subject: subject, Reply: inbox}
		benchEcho(b, benchFrame, func(p []byte) (int, error) {
			m.Data = p
			if err := cli.PublishMsg(m); err != nil {
				return 0, err
			}
			got, err := sub.NextMsg(10 * time.Second)
			if err != nil {
				return 0, err
			}
			return len(got.Data), nil
		})
	})
}
