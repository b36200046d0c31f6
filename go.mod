module github.com/phrasemeet/discovery

go 1.26.0

require (
	filippo.io/edwards25519 v1.2.0
	github.com/miekg/dns v1.1.73
)

require (
	golang.org/x/net v0.59.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
)
