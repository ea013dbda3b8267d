//go:build !linux

package runtime_test

import "os/exec"

// dieWithParent: only Linux can tie a child's life to its parent's; the
// test's cleanup kills the workers everywhere else.
func dieWithParent(*exec.Cmd) {}
