// Package dist holds what installs inkorg as a service: the systemd unit inkorg.service and its
// environment file inkorg.env. Its tests check that the unit parses (systemd-analyze verify) and that
// it keeps its sandboxing, and that the environment file names only settings internal/config knows.
package dist
