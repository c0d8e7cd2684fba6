// Command relay is a Sentry-compatible store-and-forward relay. Its command line follows
// Sentry Relay's (`relay [-c DIR] run|config|credentials …`), so a Relay user already knows it.
package main

import (
	"context"
	"os"
)

func main() {
	os.Exit(execute(context.Background(), os.Args[1:], newStdCLI()))
}
