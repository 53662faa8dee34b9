package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"
)

// healthMain asks a running hub's /health endpoint (for container health
// checks, where no curl is installed): exit 0 when it answers 200.
func healthMain(args []string, env Env) int {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	url := fs.String("url", "http://127.0.0.1:7419/health", "the hub's health endpoint (listen.metrics)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		fmt.Fprintf(env.Stderr, "health: %v\n", err)
		return 2
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(env.Stderr, "health: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	fmt.Fprintf(env.Stdout, "%s", body)
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(env.Stderr, "health: %s answered %s\n", *url, resp.Status)
		return 1
	}
	return 0
}
