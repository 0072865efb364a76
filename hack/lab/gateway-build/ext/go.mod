// Stand-in for traefik's in-repo module github.com/traefik/traefik/dynamic/ext
// (traefik's go.mod: replace ... => ./pkg/config/dynamic/ext). That directory is a nested module,
// so it is not in the traefik/v3 module zip, and the module proxy does not serve it under its own
// name. Upstream it is an extension point of empty types; see ext.go.
module github.com/traefik/traefik/dynamic/ext

go 1.26.0
