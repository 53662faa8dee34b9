package optable

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Row is an entry as `myclerk-bridge ops -json` prints it.
type Row struct {
	Op      string `json:"op"`
	Code    string `json:"code"`
	MinTier int    `json:"min_tier"`
	Need    string `json:"need"`
	Lock    bool   `json:"lock"`
	Senders string `json:"senders"`
	Server  string `json:"server"`
	Served  bool   `json:"served"`
	Reply   bool   `json:"reply"`
	Command string `json:"command,omitempty"`
}

// Row returns e for printing.
func (e *Entry) Row() Row {
	cmd := e.Command
	if cmd != "" && e.Args != "" {
		cmd += " " + e.Args
	}
	return Row{Op: e.Name(), Code: fmt.Sprintf("0x%04X", uint16(e.Op)), MinTier: int(e.MinTier), Need: e.Need.String(),
		Lock: e.Lock, Senders: e.Senders.String(), Server: e.Server.String(), Served: e.Served, Reply: e.Reply, Command: cmd}
}

// JSON is the whole table as a JSON array.
func JSON() ([]byte, error) {
	rows := make([]Row, len(table))
	for i := range table {
		rows[i] = table[i].Row()
	}
	return json.MarshalIndent(rows, "", "  ")
}

func yes(b bool, s string) string {
	if b {
		return s
	}
	return ""
}

func status(e *Entry) string {
	if e.Served {
		return "served"
	}
	return "UNSUPPORTED"
}

// Text is the table for a terminal, one op a line.
func Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-6s  %-24s  %4s  %-10s  %-4s  %-22s  %-7s  %s\n", "CODE", "OP", "TIER", "NEEDS", "LOCK", "FROM", "SERVER", "STATUS")
	for i := range table {
		e := &table[i]
		fmt.Fprintf(&b, "0x%04X  %-24s  %4d  %-10s  %-4s  %-22s  %-7s  %s\n", uint16(e.Op), e.Name(), e.MinTier, e.Need,
			yes(e.Lock, "yes"), e.Senders, e.Server, status(e))
	}
	return b.String()
}

// Markdown is the table as PROFILE.md §P42 prints it (a test keeps the
// two the same).
func Markdown() string {
	var b strings.Builder
	b.WriteString("| Code | Op | Min tier | Caller needs | Lock | Sent by | Served by | Status |\n")
	b.WriteString("|------|----|---------:|--------------|------|---------|-----------|--------|\n")
	for i := range table {
		e := &table[i]
		fmt.Fprintf(&b, "| 0x%04X | %s | %d | %s | %s | %s | %s | %s |\n", uint16(e.Op), e.Name(), e.MinTier, e.Need,
			yes(e.Lock, "yes"), e.Senders, e.Server, status(e))
	}
	return b.String()
}
