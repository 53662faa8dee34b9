package wire

import (
	"os"
	"regexp"
	"strconv"
	"testing"
)

// TestProfileOverheadTable checks PROFILE.md's per-tier overhead table
// against the code: the document is normative, so they must agree.
func TestProfileOverheadTable(t *testing.T) {
	doc, err := os.ReadFile("../PROFILE.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile(`(?m)^\| (\d) \| (\d+) \| (\d+) \| (\d+) \|`)
	rows := row.FindAllStringSubmatch(string(doc), -1)
	if len(rows) != 6 {
		t.Fatalf("found %d rows in the overhead table, want 6", len(rows))
	}
	for _, r := range rows {
		n := make([]int, 4)
		for i := range n {
			n[i], _ = strconv.Atoi(r[i+1])
		}
		tier := Tier(n[0])
		if tier.HeaderSize() != n[1] || tier.TrailerSize() != n[2] || tier.Overhead() != n[3] {
			t.Errorf("PROFILE.md says tier %d: header %d, trailer %d, overhead %d; code says %d, %d, %d",
				n[0], n[1], n[2], n[3], tier.HeaderSize(), tier.TrailerSize(), tier.Overhead())
		}
		if n[1]+n[2] != n[3] {
			t.Errorf("PROFILE.md tier %d: %d + %d != %d", n[0], n[1], n[2], n[3])
		}
	}
}
