package session

import (
	"fmt"
	"runtime"
	"slices"

	"golang.org/x/sys/cpu"

	"github.com/myclerk/myclerk-bridge/wire"
	"github.com/myclerk/myclerk-bridge/wire/payload"
)

// HardwareAES reports whether this CPU runs AES and the GCM hash in
// hardware (AES-NI and PCLMULQDQ on x86-64, the ARMv8 AES and PMULL
// instructions on arm64). Only then is AES-256-GCM both faster than
// ChaCha20-Poly1305 and free of table lookups whose timing depends on the
// key, so only then does a node offer it (PROFILE.md §P23). A Raspberry Pi
// 4 has neither and stays on ChaCha20-Poly1305; a Pi 5, a NAS or a
// mini-PC with a current x86 or ARM CPU has both.
func HardwareAES() bool {
	switch runtime.GOARCH {
	case "amd64":
		return cpu.X86.HasAES && cpu.X86.HasPCLMULQDQ
	case "arm64":
		return cpu.ARM64.HasAES && cpu.ARM64.HasPMULL
	}
	return false
}

// Capabilities is what a node offers in SESSION_INIT and SESSION_RESUME,
// and, as a responder, selects from in its own order: AES-256-GCM first
// when aes is set (the caller passes HardwareAES() unless configured
// otherwise), then the mandatory ChaCha20-Poly1305, then fragmentation.
func Capabilities(aes bool) []payload.Capability {
	caps := []payload.Capability{payload.CapChaCha20, payload.CapFragmentation}
	if aes {
		caps = append([]payload.Capability{payload.CapAES256GCM}, caps...)
	}
	return caps
}

// selectedAEAD checks that the responder selected only capabilities the
// initiator offered and returns the session's AEAD.
func selectedAEAD(offered, selected []payload.Capability) (wire.AEAD, error) {
	for _, c := range selected {
		if !slices.Contains(offered, c) {
			return 0, fmt.Errorf("%w: the responder selected %v, which was not offered", ErrHandshake, c)
		}
	}
	return payload.SelectAEAD(selected), nil
}
