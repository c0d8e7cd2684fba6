package config

import (
	"fmt"
	"net"
	"strconv"
)

// checkListen checks jetstream.listen: a host:port for the embedded server's client
// listener, meaningless (and so refused) with an external server at jetstream.url.
func checkListen(j *JetStream) string {
	if j.Listen == "" {
		return ""
	}
	if !j.Embedded() {
		return "set together with jetstream.url: it opens the embedded server to other processes; with an external NATS server there is nothing to open (leave it empty)"
	}
	host, port, err := net.SplitHostPort(j.Listen)
	if err != nil {
		return fmt.Sprintf("%q is not host:port (e.g. 127.0.0.1:4222; port 0 picks a free one)", j.Listen)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Sprintf("%q: %q is not a port number (0-65535)", j.Listen, port)
	}
	if host != "" {
		if msg := checkHost(host); msg != "" {
			return fmt.Sprintf("%q: %s", j.Listen, msg)
		}
	}
	return ""
}
