package identity

import (
	"fmt"
	"strings"

	"github.com/myclerk/myclerk-bridge/wire"
)

// Name rules (PROFILE.md §P35). A name is a label people read; the node ID
// is the identity. A family member's name is either
//
//   - a plain name: 1-32 ASCII letters, digits, '_' and '-', starting with
//     a letter or digit ("pi", "grandparents-pi"); no '/', since device
//     IDs are "<node name>/<device>", and no '@', so no local name looks
//     like a federated hub's label "<name>@<8 hex digits of its family>"; or
//   - for clients only (the bridge's Matrix members), a Matrix user ID by
//     the Matrix grammar: "@" localpart ":" server name, at most 255 bytes,
//     the localpart of printable ASCII without ':' (the historical user ID
//     grammar), the server name a DNS name, IPv4 or [IPv6] literal with an
//     optional port.
//
// Neither form admits spaces, control characters or anything outside
// printable ASCII, so a name never carries a terminal escape sequence.
// Among a family's nodes that are not revoked a name is unique, compared
// without regard to ASCII case (the store keeps it so).
const (
	MaxPlainName  = 32
	MaxMatrixName = 255
)

// Name errors: an invalid name is BAD_REQUEST, a taken one CONFLICT.
var (
	ErrName      = &wire.Error{Code: wire.CodeBadRequest, Reason: "invalid name"}
	ErrNameTaken = &wire.Error{Code: wire.CodeConflict, Reason: "name taken"}
)

// CheckName reports whether name may name a family member of role.
func CheckName(name string, role Role) error {
	if strings.HasPrefix(name, "@") {
		if role != RoleClient {
			return fmt.Errorf("%w: \"%s\": a Matrix user ID names only a client", ErrName, Printable(name))
		}
		if err := checkMatrixID(name); err != nil {
			return fmt.Errorf("%w: \"%s\": %s", ErrName, Printable(name), err)
		}
		return nil
	}
	if !plainName(name) {
		return fmt.Errorf("%w: \"%s\": want 1-%d letters, digits, '_' or '-', starting with a letter or digit (or, for a client, a Matrix user ID)",
			ErrName, Printable(name), MaxPlainName)
	}
	return nil
}

func plainName(s string) bool {
	if len(s) == 0 || len(s) > MaxPlainName {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case alnum(c):
		case (c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

func alnum(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' }

// checkMatrixID checks "@localpart:server_name" (Matrix appendix
// "Identifier grammar").
func checkMatrixID(s string) error {
	if len(s) > MaxMatrixName {
		return fmt.Errorf("%d bytes, at most %d", len(s), MaxMatrixName)
	}
	local, server, ok := strings.Cut(s[1:], ":")
	if !ok || local == "" {
		return fmt.Errorf("want @localpart:server")
	}
	for i := 0; i < len(local); i++ {
		if c := local[i]; c < 0x21 || c > 0x7e {
			return fmt.Errorf("the localpart holds a byte 0x%02x", c)
		}
	}
	const dnsChars = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-."
	host, port := server, ""
	if strings.HasPrefix(server, "[") {
		end := strings.IndexByte(server, ']')
		if end < 3 || strings.Trim(server[1:end], "0123456789abcdefABCDEF:.") != "" {
			return fmt.Errorf("bad IPv6 literal")
		}
		port = server[end+1:]
	} else {
		if i := strings.IndexByte(server, ':'); i >= 0 {
			host, port = server[:i], server[i:]
		}
		if host == "" || strings.Trim(host, dnsChars) != "" {
			return fmt.Errorf("bad server name")
		}
	}
	if port != "" {
		p, ok := strings.CutPrefix(port, ":")
		if !ok || len(p) == 0 || len(p) > 5 || strings.Trim(p, "0123456789") != "" {
			return fmt.Errorf("bad port")
		}
	}
	return nil
}

// Printable is s with every byte outside printable ASCII (control
// characters, escapes, DEL, anything non-ASCII) written as \xNN and every
// backslash as \\, for terminals and chat: names from old databases may
// hold anything.
func Printable(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b.WriteString(`\\`)
		case c < 0x20 || c > 0x7e:
			fmt.Fprintf(&b, `\x%02x`, c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
