package cli

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/myclerk/myclerk-bridge/wire/vectors"
)

func frameVectors(args []string, env Env) error {
	fs := flag.NewFlagSet("frame vectors", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	dir := fs.String("dir", "testdata/vectors", "directory to write the vector files to")
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, "Usage: myclerk-bridge frame vectors [-dir DIR]\n\nWrites the wire profile's test vectors (JSON) from fixed inputs.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return usageErr(err)
	}
	if fs.NArg() != 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	files, err := vectors.Files()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	for _, name := range vectors.Names(files) {
		if err := os.WriteFile(filepath.Join(*dir, name), files[name], 0o644); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "wrote %s (%d bytes)\n", filepath.Join(*dir, name), len(files[name]))
	}
	return nil
}
