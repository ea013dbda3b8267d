// Package shm maps shared-memory segments that ranks on one host use to
// exchange tensor data without the network, and gives the few primitives
// that cross-process waiting needs: futex wait and wake on a word of a
// segment, and a liveness probe for a segment's owner.
//
// A segment is a file under /dev/shm created by its owner with O_EXCL and
// mode 0600, under a random name. Peers learn the name and a random token
// over an authenticated channel, open the file, check that it belongs to
// their own user, is mode 0600 and holds the token, and map it. Once every
// peer has mapped it the owner unlinks the file, so nothing is left behind
// even if every process is killed; Sweep removes files of owners that died
// between creating and unlinking.
//
// The owner holds an open-file-description lock on its segment for as long
// as it lives; the kernel drops it when the process dies, however it dies,
// so Alive tells a peer whether the owner is still there (across PID
// namespaces too, unlike a PID check).
package shm

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Dir is where segments live.
var Dir = "/dev/shm"

// Prefix starts every segment's file name.
const Prefix = "ringo-"

// TokenLen is the length of a segment's token.
const TokenLen = 16

// MaxSize bounds a segment's size.
const MaxSize = 1 << 30

// ErrUnsupported: this platform has no shared-memory transport.
var ErrUnsupported = errors.New("shm: shared memory is not supported on this platform")

// Segment is a mapped shared-memory segment.
type Segment struct {
	// Name is the file's base name under Dir.
	Name string
	// Token is the random value the owner wrote at the start of the
	// segment's header and shares with its peers.
	Token [TokenLen]byte
	// Mem is the mapping, Size bytes. The first TokenLen bytes hold Token.
	Mem []byte

	// Local reports that the segment's owner is this process (ranks that
	// are goroutines of one process): a waiter then does better to let
	// the Go scheduler run the owner than to block a thread in the kernel.
	Local bool

	owner bool
	f     *os.File
}

// created holds the names of the segments this process owns.
var created sync.Map

func register(name string)   { created.Store(name, true) }
func deregister(name string) { created.Delete(name) }
func isLocal(name string) bool {
	_, ok := created.Load(name)
	return ok
}

// newName returns a fresh random file name.
func newName() (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return Prefix + hex.EncodeToString(b[:]), nil
}

// validName reports whether name could have come from Create: it is read
// from the network, so it must not escape Dir.
func validName(name string) bool {
	if !strings.HasPrefix(name, Prefix) || len(name) != len(Prefix)+24 {
		return false
	}
	_, err := hex.DecodeString(name[len(Prefix):])
	return err == nil
}

// Path is the segment's file path, while it exists.
func (s *Segment) Path() string { return filepath.Join(Dir, s.Name) }

// Sweep removes segment files left by owners that died before unlinking
// them: files of this user under Dir whose owner no longer holds their
// lock and that are older than minAge. It returns how many it removed.
func Sweep(minAge time.Duration) int {
	entries, err := os.ReadDir(Dir)
	if err != nil {
		return 0
	}
	removed := 0
	for _, e := range entries {
		if !validName(e.Name()) {
			continue
		}
		info, err := e.Info()
		if err != nil || time.Since(info.ModTime()) < minAge || !ownedByMe(info) {
			continue
		}
		path := filepath.Join(Dir, e.Name())
		if stale(path) {
			if os.Remove(path) == nil {
				removed++
			}
		}
	}
	return removed
}

func errName(name string) error {
	return fmt.Errorf("shm: %q is not a segment name", name)
}
