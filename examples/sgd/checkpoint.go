package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
)

// checkpointMagic opens every checkpoint file.
const checkpointMagic = "RINGOSGD"

// checkpointVersion is the file format's version.
const checkpointVersion = 1

// checkpointName is the file's name inside the -checkpoint directory.
const checkpointName = "sgd.ckpt"

// errNoCheckpoint: the directory holds no checkpoint yet.
var errNoCheckpoint = errors.New("no checkpoint")

// checkpoint is the training state at a step boundary: after Step
// updates, the weights and the optimizer's velocity. Config is the
// fingerprint of everything that determines the run's arithmetic (model,
// data, seed, batch, learning rate...), so that a checkpoint is never
// restored into a different run.
type checkpoint struct {
	Config   [32]byte
	Step     int
	Weights  []float64
	Velocity []float64
}

// The file: magic (8 bytes), version (uint32), config fingerprint (32),
// step (uint64), parameter count n (uint64), n weights, n velocities
// (float64 bits), then the SHA-256 of everything before it. Little endian.
func (c *checkpoint) marshal() []byte {
	n := len(c.Weights)
	var b bytes.Buffer
	b.Grow(8 + 4 + 32 + 8 + 8 + 16*n + sha256.Size)
	b.WriteString(checkpointMagic)
	var u [8]byte
	binary.LittleEndian.PutUint32(u[:4], checkpointVersion)
	b.Write(u[:4])
	b.Write(c.Config[:])
	binary.LittleEndian.PutUint64(u[:], uint64(c.Step))
	b.Write(u[:])
	binary.LittleEndian.PutUint64(u[:], uint64(n))
	b.Write(u[:])
	for _, vs := range [][]float64{c.Weights, c.Velocity} {
		for _, v := range vs {
			binary.LittleEndian.PutUint64(u[:], math.Float64bits(v))
			b.Write(u[:])
		}
	}
	sum := sha256.Sum256(b.Bytes())
	b.Write(sum[:])
	return b.Bytes()
}

// unmarshalCheckpoint decodes and verifies a checkpoint file's bytes.
func unmarshalCheckpoint(data []byte) (*checkpoint, error) {
	const head = 8 + 4 + 32 + 8 + 8
	if len(data) < head+sha256.Size {
		return nil, fmt.Errorf("truncated: %d bytes", len(data))
	}
	if string(data[:8]) != checkpointMagic {
		return nil, errors.New("not a checkpoint of this program")
	}
	body, sum := data[:len(data)-sha256.Size], data[len(data)-sha256.Size:]
	if got := sha256.Sum256(body); !bytes.Equal(got[:], sum) {
		return nil, errors.New("checksum mismatch: the file is corrupt")
	}
	if v := binary.LittleEndian.Uint32(data[8:12]); v != checkpointVersion {
		return nil, fmt.Errorf("format version %d, want %d", v, checkpointVersion)
	}
	c := &checkpoint{}
	copy(c.Config[:], data[12:44])
	step := binary.LittleEndian.Uint64(data[44:52])
	n := binary.LittleEndian.Uint64(data[52:60])
	if step > math.MaxInt32 || n > uint64(len(body)) || uint64(len(body)-head) != 16*n {
		return nil, fmt.Errorf("inconsistent header: step %d, %d parameters in %d bytes", step, n, len(data))
	}
	c.Step = int(step)
	vals := make([]float64, 2*n)
	for i := range vals {
		vals[i] = math.Float64frombits(binary.LittleEndian.Uint64(body[head+8*i:]))
	}
	c.Weights, c.Velocity = vals[:n:n], vals[n:]
	return c, nil
}

// writeCheckpoint writes c to dir/sgd.ckpt atomically: into a temporary
// file in the same directory, synced, then renamed over the old one (and
// the directory synced), so that a crash at any point leaves either the
// old checkpoint or the new one, never a mix.
func writeCheckpoint(dir string, c *checkpoint) error {
	f, err := os.CreateTemp(dir, ".sgd.ckpt-*")
	if err != nil {
		return fmt.Errorf("writing checkpoint: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(c.marshal())
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, checkpointName))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("writing checkpoint: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the rename durable where the platform can
		_ = d.Close()
	}
	return nil
}

// readCheckpoint reads dir/sgd.ckpt; errNoCheckpoint when there is none.
func readCheckpoint(dir string) (*checkpoint, error) {
	path := filepath.Join(dir, checkpointName)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errNoCheckpoint
	}
	if err != nil {
		return nil, err
	}
	c, err := unmarshalCheckpoint(data)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	return c, nil
}
