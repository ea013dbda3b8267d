// Package fb is the Go code flatc generates from internal/wire/frame.fbs.
// Do not edit it: run `go generate ./internal/wire` (needs flatc, Debian's
// flatbuffers-compiler). Package wire wraps it with a validating decoder.
package fb
