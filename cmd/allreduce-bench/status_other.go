//go:build !unix

package main

import (
	"io"

	"github.com/ringo-ml/ringo/collective"
)

// watchStatus: no status signal on this system.
func watchStatus(*collective.Communicator, io.Writer) (stop func()) { return func() {} }

// forwardStatus: no status signal on this system.
func forwardStatus([]*child) (stop func()) { return func() {} }
