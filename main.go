// Command myclerk-bridge is the MyClerk Protocol node and Matrix
// appservice bridge. See README.md.
package main

import (
	"os"

	"github.com/myclerk/myclerk-bridge/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}))
}
