package cli

import (
	"flag"
	"fmt"

	"github.com/myclerk/myclerk-bridge/node/optable"
)

// opsMain prints the op table (node/optable): what each operation needs,
// who serves it, and whether this version serves it.
func opsMain(args []string, env Env) int {
	fs := flag.NewFlagSet("ops", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	markdown := fs.Bool("markdown", false, "print the Markdown table of PROFILE.md §P42")
	fs.Usage = func() {
		fmt.Fprint(env.Stderr, "Usage: myclerk-bridge ops [-json | -markdown]\n\nEvery MyClerk operation: minimum tier, what the caller needs, whether a lock refuses it, who may send it, who serves it.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 || *asJSON && *markdown {
		fs.Usage()
		return 2
	}
	switch {
	case *asJSON:
		b, err := optable.JSON()
		if err != nil {
			fmt.Fprintf(env.Stderr, "ops: %v\n", err)
			return 1
		}
		fmt.Fprintf(env.Stdout, "%s\n", b)
	case *markdown:
		fmt.Fprint(env.Stdout, optable.Markdown())
	default:
		fmt.Fprint(env.Stdout, optable.Text())
	}
	return 0
}
