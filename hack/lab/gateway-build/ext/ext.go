// Package ext stands in for traefik's dynamic configuration extension point
// (github.com/traefik/traefik/dynamic/ext), which traefik/v3 v3.7.13 embeds inline in
// dynamic.HTTP and dynamic.Router. The open-source build adds no fields through it, so both
// types are empty here, as upstream.
package ext

// HTTP is embedded in traefik's dynamic.HTTP; it adds no configuration.
type HTTP struct{}

// Router is embedded in traefik's dynamic.Router; it adds no configuration.
type Router struct{}
