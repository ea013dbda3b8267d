//go:build linux

package shm

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
	"unsafe"
)

// Supported reports whether this platform has the shared-memory transport.
const Supported = true

// Open-file-description locks (Linux 3.15): owned by the open file, not
// the process, so a peer in the same process sees the owner's lock.
const (
	fOFDGetlk = 36
	fOFDSetlk = 37
)

// Create makes a new segment of size bytes under Dir, writes a fresh
// token at its start and locks it for the owner's lifetime.
func Create(size int) (*Segment, error) {
	if size < TokenLen || size > MaxSize {
		return nil, fmt.Errorf("shm: segment size %d outside [%d, %d]", size, TokenLen, MaxSize)
	}
	name, err := newName()
	if err != nil {
		return nil, fmt.Errorf("shm: naming a segment: %w", err)
	}
	path := filepath.Join(Dir, name)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL|syscall.O_CLOEXEC|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("shm: creating a segment: %w", err)
	}
	fail := func(err error) (*Segment, error) {
		_ = f.Close()
		_ = os.Remove(path)
		return nil, err
	}
	if err := lock(f, syscall.F_WRLCK); err != nil {
		return fail(fmt.Errorf("shm: locking %s: %w", name, err))
	}
	// Reserve the pages now: a later SIGBUS when /dev/shm is full would
	// kill the process in the middle of an operation.
	if err := syscall.Fallocate(int(f.Fd()), 0, 0, int64(size)); err != nil {
		return fail(fmt.Errorf("shm: reserving %d bytes for %s (is %s full?): %w", size, name, Dir, err))
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return fail(fmt.Errorf("shm: mapping %s: %w", name, err))
	}
	s := &Segment{Name: name, Mem: mem, owner: true, f: f}
	if _, err := rand.Read(s.Token[:]); err != nil {
		_ = syscall.Munmap(mem)
		return fail(fmt.Errorf("shm: token: %w", err))
	}
	copy(mem, s.Token[:])
	register(name)
	return s, nil
}

// Open maps a peer's segment, checking that the file is a regular file
// owned by this user with mode 0600, of exactly size bytes, whose first
// bytes are token.
func Open(name string, token [TokenLen]byte, size int) (*Segment, error) {
	if !validName(name) {
		return nil, errName(name)
	}
	if size < TokenLen || size > MaxSize {
		return nil, fmt.Errorf("shm: segment size %d outside [%d, %d]", size, TokenLen, MaxSize)
	}
	f, err := os.OpenFile(filepath.Join(Dir, name), os.O_RDWR|syscall.O_CLOEXEC|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("shm: opening %s: %w", name, err)
	}
	fail := func(err error) (*Segment, error) {
		_ = f.Close()
		return nil, err
	}
	info, err := f.Stat()
	if err != nil {
		return fail(fmt.Errorf("shm: %s: %w", name, err))
	}
	switch {
	case !info.Mode().IsRegular():
		return fail(fmt.Errorf("shm: %s is not a regular file", name))
	case info.Mode().Perm() != 0o600:
		return fail(fmt.Errorf("shm: %s has mode %v, want 0600", name, info.Mode().Perm()))
	case !ownedByMe(info):
		return fail(fmt.Errorf("shm: %s belongs to another user", name))
	case info.Size() != int64(size):
		return fail(fmt.Errorf("shm: %s has %d bytes, want %d", name, info.Size(), size))
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return fail(fmt.Errorf("shm: mapping %s: %w", name, err))
	}
	if [TokenLen]byte(mem[:TokenLen]) != token {
		_ = syscall.Munmap(mem)
		return fail(fmt.Errorf("shm: %s holds another token: not the segment the peer announced", name))
	}
	return &Segment{Name: name, Token: token, Mem: mem, f: f, Local: isLocal(name)}, nil
}

// Unlink removes the segment's file; mappings stay valid. Only the owner
// unlinks, once every peer has mapped the segment.
func (s *Segment) Unlink() error {
	if !s.owner {
		return errors.New("shm: only a segment's owner unlinks it")
	}
	err := os.Remove(s.Path())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// Close unmaps the segment and closes its file (which drops the owner's
// lock). An owner also removes the file if it still exists.
func (s *Segment) Close() error {
	var err error
	if s.Mem != nil {
		err = syscall.Munmap(s.Mem)
		s.Mem = nil
	}
	if s.owner {
		_ = s.Unlink()
		deregister(s.Name)
	}
	if s.f != nil {
		err = errors.Join(err, s.f.Close())
		s.f = nil
	}
	return err
}

// Detach lets go of the segment but not of its memory: an owner removes
// the file, and the file (with the owner's lock) is closed, while the
// mapping stays valid until the process ends. For memory handed to a
// caller who may still hold it.
func (s *Segment) Detach() error {
	var err error
	if s.owner {
		err = s.Unlink()
		deregister(s.Name)
	}
	if s.f != nil {
		err = errors.Join(err, s.f.Close())
		s.f = nil
	}
	return err
}

// Alive reports whether the segment's owner still holds its lock: false
// once the owner process has died or closed the segment. It is one
// system call.
func (s *Segment) Alive() bool {
	if s.owner {
		return true
	}
	if s.f == nil {
		return false
	}
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0, Start: 0, Len: 1}
	if err := fcntlLock(s.f, fOFDGetlk, &lk); err != nil {
		return true // cannot tell; the operation's deadline still bounds the wait
	}
	return lk.Type != syscall.F_UNLCK
}

func lock(f *os.File, typ int16) error {
	lk := syscall.Flock_t{Type: typ, Whence: 0, Start: 0, Len: 1}
	return fcntlLock(f, fOFDSetlk, &lk)
}

func fcntlLock(f *os.File, cmd int, lk *syscall.Flock_t) error {
	_, _, errno := syscall.Syscall(syscall.SYS_FCNTL, f.Fd(), uintptr(cmd), uintptr(unsafe.Pointer(lk)))
	if errno != 0 {
		return errno
	}
	return nil
}

// stale reports whether nobody holds path's lock.
func stale(path string) bool {
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_CLOEXEC|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0, Start: 0, Len: 1}
	if err := fcntlLock(f, fOFDGetlk, &lk); err != nil {
		return false
	}
	return lk.Type == syscall.F_UNLCK
}

func ownedByMe(info fs.FileInfo) bool {
	st, ok := info.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Getuid()
}

const (
	futexWait = 0
	futexWake = 1
)

// Wait blocks while *addr == val, for at most d, unless woken by Wake on
// the same word (in any process that maps it). It may return early.
func Wait(addr *uint32, val uint32, d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	_, _, _ = syscall.Syscall6(syscall.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWait, uintptr(val),
		uintptr(unsafe.Pointer(&ts)), 0, 0)
}

// Wake wakes every process and thread blocked in Wait on addr.
func Wake(addr *uint32) {
	_, _, _ = syscall.Syscall6(syscall.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWake, uintptr(1<<31-1), 0, 0, 0)
}

// Yield gives the processor to another runnable thread of the machine.
func Yield() {
	_, _, _ = syscall.Syscall(syscall.SYS_SCHED_YIELD, 0, 0, 0)
}

// Word returns the aligned 32-bit word at byte offset off of b.
func Word(b []byte, off int) *uint32 {
	if off%4 != 0 || off+4 > len(b) {
		panic("shm: unaligned or out-of-range word")
	}
	return (*uint32)(unsafe.Pointer(&b[off]))
}

// Word64 returns the aligned 64-bit word at byte offset off of b.
func Word64(b []byte, off int) *uint64 {
	if off%8 != 0 || off+8 > len(b) {
		panic("shm: unaligned or out-of-range word")
	}
	return (*uint64)(unsafe.Pointer(&b[off]))
}
