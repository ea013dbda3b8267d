package wire

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// FuzzDecode: Decode never panics, and a frame it accepts is valid and
// survives re-encoding unchanged.
func FuzzDecode(f *testing.F) {
	e := NewEncoder()
	for _, fr := range sampleFrames() {
		f.Add(append([]byte(nil), encode(e, &fr)...))
	}
	f.Add(append([]byte(nil), e.EncodeAbort(&Abort{Rank: 1, Code: CodeClosed})...))
	f.Add(append([]byte(nil), e.EncodeHello(&Hello{Version: Version, World: 1})...))
	bad := append([]byte(nil), e.EncodeData(ptr(dataHeader()))...)
	bad[PrefixLen+int(dataPos)+dhDType] = 7
	f.Add(bad)
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	short := append([]byte(nil), e.EncodeHello(&Hello{Version: Version, Group: "g", World: 2})...)
	short = short[:len(short)-6]
	binary.LittleEndian.PutUint32(short, uint32(len(short)-PrefixLen))
	f.Add(short)

	f.Fuzz(func(t *testing.T, buf []byte) {
		var fr Frame
		err := Decode(buf, lim, &fr)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			if strings.Contains(err.Error(), "flatbuffers:") {
				t.Fatalf("runtime panic reached recover: %v", err)
			}
			return
		}
		checkReencode(t, NewEncoder(), &fr, buf)
	})
}
