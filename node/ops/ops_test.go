package ops

import (
	"errors"
	"runtime"
	"testing"

	"github.com/myclerk/myclerk-bridge/wire"
)

func TestUnmarshalRefusesHugeDeclarations(t *testing.T) {
	tests := map[string][]byte{
		"map of 4 billion settings":  {0x81, 0xa8, 's', 'e', 't', 't', 'i', 'n', 'g', 's', 0xdf, 0xff, 0xff, 0xff, 0xff},
		"array of 4 billion devices": {0x81, 0xa7, 'd', 'e', 'v', 'i', 'c', 'e', 's', 0xdd, 0xff, 0xff, 0xff, 0xff},
		"string of 4 GiB":            {0x81, 0xa4, 'n', 'o', 'd', 'e', 0xdb, 0xff, 0xff, 0xff, 0xff},
		"trailing bytes":             {0x80, 0x00},
		"deep nesting":               {0x81, 0xa1, 'x', 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x90},
	}
	for name, b := range tests {
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		var r Reply
		err := Unmarshal(b, &r)
		runtime.ReadMemStats(&m1)
		if !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
		if d := m1.TotalAlloc - m0.TotalAlloc; d > 64<<10 {
			t.Errorf("%s: allocated %d bytes", name, d)
		}
	}
	// Many entries within the limit still decode.
	devs := make([]Device, 100)
	for i := range devs {
		devs[i] = Device{ID: "d", Capabilities: map[string]string{"a": "b"}}
	}
	b, _ := Marshal(Reply{Req: 1, Devices: devs})
	var r Reply
	if err := Unmarshal(b, &r); err != nil || len(r.Devices) != 100 {
		t.Fatalf("%d devices, %v", len(r.Devices), err)
	}
}

func FuzzUnmarshal(f *testing.F) {
	b, _ := Marshal(Reply{Req: 7, Devices: []Device{{ID: "pi/temp", Capabilities: map[string]string{"unit": "c"}}}})
	f.Add(b)
	r, _ := Marshal(Request{Req: 1, Device: "x", Settings: map[string]string{"k": "v"}})
	f.Add(r)
	f.Fuzz(func(t *testing.T, b []byte) {
		var rp Reply
		Unmarshal(b, &rp)
		var rq Request
		Unmarshal(b, &rq)
		var e Event
		Unmarshal(b, &e)
		var a Announce
		Unmarshal(b, &a)
	})
}
