package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"image"
	_ "image/png"
	"io"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/ringo-ml/ringo/collective"
)

func TestParseSize(t *testing.T) {
	good := map[string]int64{
		"0": 0, "1": 1, "1000": 1000, "1K": 1024, "1k": 1024, "32M": 32 << 20, "2G": 2 << 30, "3g": 3 << 30, "64m": 64 << 20,
	}
	for s, want := range good {
		got, err := parseSize(s)
		if err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", s, got, err, want)
		}
		if back, err := parseSize(formatSize(got)); err != nil || back != got {
			t.Errorf("formatSize(%d) = %q does not read back", got, formatSize(got))
		}
	}
	for _, s := range []string{"", "K", "1Q", "-1", "1.5K", "1KB", "0x10", "9999999999G", "1 K"} {
		if n, err := parseSize(s); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", s, n)
		}
	}
	for n, want := range map[int64]string{0: "0", 1000: "1000", 1024: "1K", 1536: "1536", 32 << 20: "32M", 1 << 30: "1G", 3 << 29: "1536M"} {
		if got := formatSize(n); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestBusFactor(t *testing.T) {
	cases := []struct {
		op   opKind
		n    int
		want float64
	}{
		{opAllReduce, 1, 0}, {opAllReduce, 2, 1}, {opAllReduce, 4, 1.5}, {opAllReduce, 8, 1.75},
		{opReduceScatter, 4, 0.75}, {opAllGather, 4, 0.75}, {opGather, 4, 0.75}, {opAllGather, 2, 0.5},
		{opBroadcast, 4, 1}, {opReduce, 4, 1}, {opSendRecv, 4, 1}, {opBroadcast, 1, 1},
	}
	for _, c := range cases {
		if got := c.op.busFactor(c.n); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%s with %d ranks: factor %v, want %v", c.op, c.n, got, c.want)
		}
	}
}

func TestSweepRows(t *testing.T) {
	cases := []struct {
		args []string
		want []rowSpec
	}{
		{[]string{"-b", "1K", "-e", "64K", "-f", "8"}, []rowSpec{{1024, 256}, {8192, 2048}, {65536, 16384}}},
		{[]string{"-b", "1K", "-e", "100K", "-f", "8", "-t", "double"}, []rowSpec{{1024, 128}, {8192, 1024}, {65536, 8192}}},
		{[]string{"-b", "32M", "-e", "32M"}, []rowSpec{{32 << 20, 8 << 20}}},
		// Sizes round down to whole elements; zero elements are skipped...
		{[]string{"-b", "2", "-e", "16", "-f", "2"}, []rowSpec{{4, 1}, {8, 2}, {16, 4}}},
		// ...except size 0 itself.
		{[]string{"-b", "0", "-e", "16", "-f", "4"}, []rowSpec{{0, 0}, {4, 1}, {16, 4}}},
		// allgather, gather, reducescatter: the size is the total, split in n.
		{[]string{"-np", "3", "-op", "allgather", "-b", "4", "-e", "64", "-f", "2"}, []rowSpec{{12, 1}, {24, 2}, {60, 5}}},
		{[]string{"-np", "3", "-op", "gather", "-b", "4", "-e", "64", "-f", "2"}, []rowSpec{{12, 1}, {24, 2}, {60, 5}}},
		{[]string{"-np", "4", "-op", "reducescatter", "-b", "0", "-e", "16", "-f", "2"}, []rowSpec{{0, 0}, {16, 1}}},
		{[]string{"-np", "4", "-op", "reducescatter", "-b", "1M", "-e", "1M"}, []rowSpec{{1 << 20, 65536}}},
		{[]string{"-np", "4", "-op", "reducescatter", "-b", "4", "-e", "8"}, nil},
	}
	for _, c := range cases {
		got := expectRows(t, c.args)
		if len(got) != len(c.want) {
			t.Errorf("%v: %v, want %v", c.args, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%v: %v, want %v", c.args, got, c.want)
				break
			}
		}
	}
}

func TestParseFlagsDefaults(t *testing.T) {
	cfg, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.np != 4 || cfg.op != opAllReduce || cfg.minBytes != 32<<20 || cfg.maxBytes != 32<<20 || cfg.factor != 2 ||
		cfg.dt != float32T || cfg.redop != collective.Sum || cfg.root != 0 || cfg.algo != collective.Auto ||
		cfg.iters != 20 || cfg.warmup != 5 || !cfg.check || cfg.chunk != collective.DefaultChunkBytes {
		t.Errorf("defaults: %+v", cfg)
	}
	for _, args := range [][]string{{"-c", "0"}, {"-c=false"}, {"-c", "false"}} {
		cfg, err := parseFlags(args, io.Discard)
		if err != nil || cfg.check {
			t.Errorf("%v: check %v, %v", args, cfg != nil && cfg.check, err)
		}
	}
	for spelling, want := range map[string]dtype{"float": float32T, "float32": float32T, "double": float64T, "float64": float64T,
		"int32": int32T, "int64": int64T, "uint8": uint8T, "float16": float16T, "half": float16T, "bfloat16": bfloat16T} {
		cfg, err := parseFlags([]string{"-t", spelling}, io.Discard)
		if err != nil || cfg.dt != want {
			t.Errorf("-t %s: %v, %v", spelling, cfg, err)
		}
	}
	for name, want := range map[string]collective.Algorithm{"auto": collective.Auto, "ring": collective.Ring, "tree": collective.Tree} {
		if cfg, err := parseFlags([]string{"-algo", name}, io.Discard); err != nil || cfg.algo != want {
			t.Errorf("-algo %s: %v, %v", name, cfg, err)
		}
	}
	var ue *usageError
	if _, err := parseFlags([]string{"-algo", "best"}, io.Discard); !errors.As(err, &ue) || !strings.Contains(err.Error(), "-algo") {
		t.Errorf("-algo best: %v", err)
	}
}

// The check's inputs make every reduction exact, whatever the order: the
// float32 result equals the float64 one for every world size up to the
// limit.
func TestCheckValuesExact(t *testing.T) {
	for _, op := range []collective.ReduceOp{collective.Sum, collective.Prod, collective.Min, collective.Max} {
		cfg := &config{op: opAllReduce, redop: op}
		for _, n := range []int{1, 2, 3, 7, 16, maxRanks} {
			for i := range int64(2000) {
				if a, b := reduced[float32](cfg, n, i), reduced[float64](cfg, n, i); float64(a) != b {
					t.Fatalf("%s over %d ranks, element %d: float32 %v, float64 %v", op, n, i, a, b)
				}
			}
		}
	}
	// The copy ops' inputs are integers that float32 holds exactly.
	cfg := &config{op: opAllGather}
	for i := range int64(2000) {
		if a, b := input[float32](cfg, 3, i), input[float64](cfg, 3, i); float64(a) != b {
			t.Fatalf("element %d: float32 %v, float64 %v", i, a, b)
		}
	}
}

// In-process runs of the whole program, so that the race detector sees
// the sweep, the check and the report.
func TestRunInProc(t *testing.T) {
	cases := []struct {
		args  []string
		code  int
		wants []string
	}{
		{[]string{"-op", "reducescatter", "-o", "min"}, exitOK, []string{"# Out of bounds values : 0 OK"}},
		{[]string{"-op", "allreduce", "-c", "0"}, exitOK, []string{"     N/A\n"}},
		{[]string{"-op", "allgather", "-test-corrupt-rank", "2"}, exitWrong, []string{"# Out of bounds values : 3 FAILED"}},
		{[]string{"-op", "broadcast", "-root", "2", "-b", "0"}, exitOK, []string{"           0             0     float    none       2"}},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			args := append(append([]string{"-inproc", "-np", "3"}, small...), c.args...)
			var stdout, stderr bytes.Buffer
			if code := run(args, nil, &stdout, &stderr); code != c.code {
				t.Fatalf("exit status %d, want %d\n%s\n%s", code, c.code, stdout.String(), stderr.String())
			}
			for _, w := range c.wants {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("no %q in\n%s", w, stdout.String())
				}
			}
		})
	}
}

func TestTableLayout(t *testing.T) {
	wrong := int64(0)
	got := formatRow(rowResult{Size: 1024, Count: 256, Type: "float", Redop: "sum", Root: -1, TimeUS: 41.2, AlgBW: 0.0248, BusBW: 0.0372, Wrong: &wrong})
	want := "        1024           256     float     sum      -1    41.20    0.02    0.04       0"
	if got != want {
		t.Errorf("row\n%q, want\n%q", got, want)
	}
	// The column titles sit over the columns.
	for _, title := range []string{"size", "count", "type", "redop", "root", "time", "algbw", "busbw", "#wrong"} {
		end := strings.Index(colHead, title) + len(title)
		if end != len(want) && want[end] != ' ' || want[end-1] == ' ' {
			t.Errorf("column %q does not end where its values end\n%s\n%s", title, colHead, want)
		}
	}
}

func readJSON(t *testing.T, file string) jsonReport {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var rep jsonReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return rep
}

// checkPlot checks that a PNG decodes and an SVG is well-formed XML.
func checkPlot(t *testing.T, file string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(file, ".png") {
		img, format, err := image.Decode(bytes.NewReader(b))
		if err != nil || format != "png" {
			t.Fatalf("%s: %v (format %q)", file, err, format)
		}
		if r := img.Bounds(); r.Dx() < 100 || r.Dy() < 100 {
			t.Errorf("%s is %v", file, r)
		}
		return
	}
	if !bytes.HasPrefix(b, []byte("<?xml")) && !bytes.HasPrefix(b, []byte("<svg")) {
		t.Fatalf("%s does not start like an SVG: %q", file, b[:min(len(b), 40)])
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	svg := false
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "svg" {
			svg = true
		}
	}
	if !svg {
		t.Errorf("%s has no <svg> element", file)
	}
}

// The progress line goes to the terminal only, between the table's lines,
// and the table passes through unchanged.
func TestProgress(t *testing.T) {
	rows := []rowSpec{{1024, 256}, {4096, 1024}, {16384, 4096}, {65536, 16384}, {262144, 65536}}
	table := "# header\n#\n" + colHead + "\n" + colUnits + "\n" +
		"        1024 row\n        4096 row\n       16384 row\n       65536 row\n      262144 row\n# Out of bounds values : 0 OK\n"
	var out, tty bytes.Buffer
	p := newProgress(&out, &tty, rows)
	for _, chunk := range []string{table[:7], table[7:100], table[100:]} { // lines split across writes
		if _, err := p.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if out.String() != table {
		t.Errorf("the table changed:\n%s", out.String())
	}
	for i, r := range rows {
		if want := fmt.Sprintf("measuring %d B (size %d of %d)", r.bytes, i+1, len(rows)); !strings.Contains(tty.String(), want) {
			t.Errorf("no %q on the terminal: %q", want, tty.String())
		}
	}
	if !strings.HasSuffix(tty.String(), "\r\033[K") {
		t.Errorf("the progress line is not erased at the end: %q", tty.String())
	}
	// Not a terminal, or a short sweep: no progress at all.
	tty.Reset()
	p = newProgress(&out, &tty, rows[:2])
	_, _ = p.Write([]byte(table))
	_ = p.Close()
	if tty.Len() != 0 {
		t.Errorf("progress for a short sweep: %q", tty.String())
	}
}

// TestRankProcs: -procs wins; else GOMAXPROCS in the environment is left
// to the ranks; else the cores are shared out, at least one each.
func TestRankProcs(t *testing.T) {
	for _, tc := range []struct {
		flag, ranks, cores int
		env                string
		want               int
	}{
		{0, 4, 2, "", 1},
		{0, 4, 16, "", 4},
		{0, 3, 16, "", 5},
		{0, 16, 16, "", 1},
		{0, 2, 1, "", 1},
		{0, 4, 16, "8", 0},
		{3, 4, 2, "", 3},
		{3, 4, 2, "8", 3},
	} {
		if got := rankProcs(tc.flag, tc.ranks, tc.cores, tc.env); got != tc.want {
			t.Errorf("rankProcs(%d, %d ranks, %d cores, env %q) = %d, want %d", tc.flag, tc.ranks, tc.cores, tc.env, got, tc.want)
		}
	}
}
