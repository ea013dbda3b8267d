package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/ringo-ml/ringo/collective"
)

// header is what a run was: the table's "#" lines and the JSON's header.
type header struct {
	Version    string `json:"version"`
	Op         string `json:"op"`
	Ranks      int    `json:"ranks"`
	Transport  string `json:"transport"`
	Algorithm  string `json:"algorithm"`
	Host       string `json:"host"`
	GoVersion  string `json:"go_version"`
	GOOS       string `json:"goos"`
	GOARCH     string `json:"goarch"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	NumCPU     int    `json:"num_cpu"`
	Flags      string `json:"flags"`
	Start      string `json:"start"`
	BusFactor  string `json:"bus_factor"`
	Units      string `json:"units"`
	TestHooks  string `json:"test_hooks,omitempty"`
}

// jsonReport is the -json file.
type jsonReport struct {
	header
	Rows        []rowResult `json:"rows"`
	AvgBusBW    float64     `json:"avg_busbw_gbps"`
	WrongTotal  int64       `json:"wrong_total"`
	OK          bool        `json:"ok"`
	WallSeconds float64     `json:"wall_seconds"`
}

// report prints rank 0's table as the rows come, and writes -json and
// -plot at the end.
type report struct {
	cfg  *config
	w    io.Writer
	hdr  header
	rows []rowResult
	t0   time.Time
	err  error // the first failure to write a file
}

func newReport(cfg *config, n int, transport string, w io.Writer) *report {
	host, _ := os.Hostname()
	return &report{cfg: cfg, w: w, hdr: header{
		Version:    version,
		Op:         cfg.op.String(),
		Ranks:      n,
		Transport:  transport,
		Algorithm:  algoText(cfg),
		Host:       host,
		GoVersion:  runtime.Version(),
		GOOS:       runtime.GOOS,
		GOARCH:     runtime.GOARCH,
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		NumCPU:     runtime.NumCPU(),
		Flags:      cfg.flagLine(),
		BusFactor:  busFactorText(cfg.op, n),
		Units:      "GB/s = 1e9 bytes/s; time = mean per iteration of the slowest rank",
		TestHooks:  cfg.testHooks(),
	}}
}

// algoText describes the -algo setting.
func algoText(cfg *config) string {
	if cfg.compare {
		return "compare (ring, tree and auto take turns within each size: a row each, the last column says which; auto's ratios below the table)"
	}
	if cfg.tcompare {
		return "auto on each transport (-transport compare: tls, quic and auto take turns within each size: a row each, the last column says which; auto's ratios below the table)"
	}
	switch cfg.algo {
	case collective.Ring:
		return "ring"
	case collective.Tree:
		return "tree (the ring for collectives without a tree schedule)"
	}
	return "auto (collective's cost model picks per call; see the algorithm line below the table)"
}

// busFactorText explains busbw for op with n ranks.
func busFactorText(op opKind, n int) string {
	var f string
	switch op {
	case opAllReduce:
		f = "2(n-1)/n"
	case opReduceScatter, opAllGather, opGather:
		f = "(n-1)/n"
	default:
		f = "1"
	}
	return fmt.Sprintf("busbw = algbw × %s = algbw × %.4g (n = %d)", f, op.busFactor(n), n)
}

// Column layout of nccl-tests (one set of columns: ringo's collectives are
// in place or out of place by their nature, not by choice).
const (
	colHead  = "#       size         count      type   redop    root     time   algbw   busbw  #wrong"
	colUnits = "#        (B)    (elements)                               (us)  (GB/s)  (GB/s)"
)

func (r *report) start(rows []rowSpec) {
	r.t0 = time.Now()
	r.hdr.Start = r.t0.UTC().Format(time.RFC3339)
	h := &r.hdr
	fmt.Fprintf(r.w, "# %s\n", h.Version)
	fmt.Fprintf(r.w, "# op %s, %d ranks, transport %s, algorithm %s\n", h.Op, h.Ranks, h.Transport, h.Algorithm)
	fmt.Fprintf(r.w, "# host %s, %s %s/%s, GOMAXPROCS %d, NumCPU %d\n", h.Host, h.GoVersion, h.GOOS, h.GOARCH, h.GOMAXPROCS, h.NumCPU)
	fmt.Fprintf(r.w, "# flags: %s\n", h.Flags)
	if h.TestHooks != "" {
		fmt.Fprintf(r.w, "# TEST HOOKS: %s\n", h.TestHooks)
	}
	fmt.Fprintf(r.w, "# %s; %s\n", h.Units, h.BusFactor)
	if len(rows) == 0 {
		fmt.Fprintf(r.w, "# no sizes: every size from -b to -e rounds down to zero elements\n")
	}
	fmt.Fprintf(r.w, "#\n%s\n%s\n", colHead, colUnits)
}

// formatRow writes a row with nccl-tests' widths.
func formatRow(res rowResult) string {
	wrong := "N/A"
	if res.Wrong != nil {
		wrong = fmt.Sprint(*res.Wrong)
	}
	return fmt.Sprintf("%12d  %12d  %8s  %6s  %6d  %7s  %6.2f  %6.2f  %6s",
		res.Size, res.Count, res.Type, res.Redop, res.Root, formatTime(res.TimeUS), res.AlgBW, res.BusBW, wrong)
}

// formatTime prints microseconds with three or four significant digits,
// as nccl-tests does.
func formatTime(us float64) string {
	switch {
	case us >= 10000:
		return fmt.Sprintf("%.0f", us)
	case us >= 100:
		return fmt.Sprintf("%.1f", us)
	}
	return fmt.Sprintf("%.2f", us)
}

func (r *report) row(res rowResult) {
	r.rows = append(r.rows, res)
	line := formatRow(res)
	if r.cfg.spread {
		line += fmt.Sprintf("  [%s..%s us over %d calls]", formatTime(res.TimeMinUS), formatTime(res.TimeMaxUS), res.Iters)
	}
	if res.Requested != "" {
		line += "  " + res.Requested
	}
	fmt.Fprintln(r.w, line)
}

// transportSummary writes, for -transport compare, each size's auto time
// over the faster of TLS lanes and QUIC and over each, and what auto ran.
func (r *report) transportSummary() {
	k := len(transportsCompared)
	fmt.Fprintf(r.w, "# auto ÷ best of tls and quic, auto ÷ tls, auto ÷ quic (same run; 1.00 = as fast):\n")
	for i := 0; i+k <= len(r.rows); i += k {
		t := map[string]float64{}
		var auto rowResult
		for _, row := range r.rows[i : i+k] {
			t[row.Requested] = row.TimeUS
			if row.Requested == "auto" {
				auto = row
			}
		}
		best := min(t["tls"], t["quic"])
		if best <= 0 {
			continue
		}
		fmt.Fprintf(r.w, "#   %12d B: auto ÷ best %.2f, ÷ tls %.2f, ÷ quic %.2f (auto ran %s)\n",
			auto.Size, t["auto"]/best, t["auto"]/t["tls"], t["auto"]/t["quic"], auto.what())
	}
}

// what names what ran a row: its algorithm, over its transport where the
// data crossed a network.
func (row rowResult) what() string {
	switch row.Transport {
	case "tls", "quic", "tcp":
		return row.Algorithm + " over " + row.Transport
	}
	return row.Algorithm
}

// compareSummary writes, for -algo compare, each size's auto time over
// the faster of ring and tree and over the ring, and what auto ran.
func (r *report) compareSummary() {
	fmt.Fprintf(r.w, "# auto ÷ best and auto ÷ ring (same run; 1.00 = as fast):\n")
	for i := 0; i+len(compared) <= len(r.rows); i += len(compared) {
		t := map[string]float64{}
		var auto rowResult
		for _, row := range r.rows[i : i+len(compared)] {
			t[row.Requested] = row.TimeUS
			if row.Requested == "auto" {
				auto = row
			}
		}
		best := min(t["ring"], t["tree"])
		if best <= 0 || t["ring"] <= 0 {
			continue
		}
		fmt.Fprintf(r.w, "#   %12d B: auto ÷ best %.2f, auto ÷ ring %.2f (auto ran %s)\n",
			auto.Size, t["auto"]/best, t["auto"]/t["ring"], auto.what())
	}
}

// avgBusBW is the mean busbw over the rows, as nccl-tests reports it.
func (r *report) avgBusBW() float64 {
	if len(r.rows) == 0 {
		return 0
	}
	var s float64
	for _, row := range r.rows {
		s += row.BusBW
	}
	return s / float64(len(r.rows))
}

// algoSummary says which algorithm (and, between hosts, transport) ran
// each size, as ranges of sizes that used the same: "4096..65536
// recursive doubling over tls, 262144 ring over tls".
func (r *report) algoSummary() string {
	var parts []string
	for i := 0; i < len(r.rows); {
		j := i
		for j+1 < len(r.rows) && r.rows[j+1].what() == r.rows[i].what() {
			j++
		}
		span := fmt.Sprint(r.rows[i].Size)
		if j > i {
			span += ".." + fmt.Sprint(r.rows[j].Size)
		}
		parts = append(parts, span+" "+r.rows[i].what())
		i = j + 1
	}
	return strings.Join(parts, ", ")
}

func (r *report) finish(wrong int64) {
	if r.cfg.compare {
		r.compareSummary()
	} else if r.cfg.tcompare {
		r.transportSummary()
	} else if len(r.rows) > 0 {
		fmt.Fprintf(r.w, "# Algorithm by size (B): %s\n", r.algoSummary())
		// One line per size, or per run of sizes with the same reason
		// (the shared-memory engine gives the same one at every size).
		for i := 0; i < len(r.rows); {
			row := r.rows[i]
			j := i + 1
			for j < len(r.rows) && r.rows[j].Reason == row.Reason {
				j++
			}
			if row.Reason != "" && row.Reason != "forced" {
				if j-i == 1 {
					fmt.Fprintf(r.w, "#   %12d B: %s\n", row.Size, row.Reason)
				} else {
					fmt.Fprintf(r.w, "#   %s B: %s\n", fmt.Sprintf("%d..%d", row.Size, r.rows[j-1].Size), row.Reason)
				}
			}
			i = j
		}
	}
	status := "OK"
	if wrong > 0 {
		status = "FAILED"
	}
	fmt.Fprintf(r.w, "# Out of bounds values : %d %s\n", wrong, status)
	fmt.Fprintf(r.w, "# Avg bus bandwidth    : %.6g\n", r.avgBusBW())
	fmt.Fprintln(r.w, "#")
	if r.cfg.jsonFile != "" {
		if err := r.writeJSON(wrong); err != nil && r.err == nil {
			r.err = err
		}
	}
	if r.cfg.plotFile != "" {
		if err := writePlot(r.cfg.plotFile, &r.hdr, r.rows); err != nil && r.err == nil {
			r.err = fmt.Errorf("-plot %s: %w", r.cfg.plotFile, err)
		}
	}
}

// createFiles creates (empties) the -json and -plot files, so that a
// name that cannot be written fails before the sweep.
func (r *report) createFiles() error {
	for _, f := range []struct{ flag, name string }{{"-json", r.cfg.jsonFile}, {"-plot", r.cfg.plotFile}} {
		if f.name == "" {
			continue
		}
		fh, err := os.Create(f.name)
		if err != nil {
			return fmt.Errorf("%s: %w", f.flag, err)
		}
		if err := fh.Close(); err != nil {
			return fmt.Errorf("%s: %w", f.flag, err)
		}
	}
	return nil
}

func (r *report) writeJSON(wrong int64) error {
	rows := r.rows
	if rows == nil {
		rows = []rowResult{}
	}
	b, err := json.MarshalIndent(jsonReport{
		header: r.hdr, Rows: rows, AvgBusBW: r.avgBusBW(), WrongTotal: wrong, OK: wrong == 0,
		WallSeconds: time.Since(r.t0).Seconds(),
	}, "", "  ")
	if err != nil {
		return fmt.Errorf("-json %s: %w", r.cfg.jsonFile, err)
	}
	if err := os.WriteFile(r.cfg.jsonFile, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("-json: %w", err)
	}
	return nil
}

// progress shows on a terminal which size a long sweep is measuring. It
// sits between the table and stdout, watching the table's lines: after the
// column header and after each row, the next size is being measured.
type progress struct {
	out   io.Writer // the table's destination
	tty   io.Writer // stderr when it is a terminal and the sweep is long; else nil
	rows  []rowSpec
	next  int
	buf   []byte
	shown bool
}

// newProgress wraps out. Progress lines go to tty (stderr when it is a
// terminal, nil otherwise) only when the sweep is long enough to be worth
// watching.
func newProgress(out io.Writer, tty io.Writer, rows []rowSpec) *progress {
	p := &progress{out: out, rows: rows}
	if tty != nil && sweepIsLong(rows) {
		p.tty = tty
	}
	return p
}

// terminal returns w when it is a terminal, else nil.
func terminal(w io.Writer) io.Writer {
	if f, ok := w.(*os.File); ok && isTerminal(f) {
		return f
	}
	return nil
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// sweepIsLong: many sizes, or large ones.
func sweepIsLong(rows []rowSpec) bool {
	return len(rows) > 4 || (len(rows) > 1 && rows[len(rows)-1].bytes >= 16<<20)
}

func (p *progress) Write(b []byte) (int, error) {
	if p.tty == nil {
		return p.out.Write(b)
	}
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		line := p.buf[:i+1]
		p.clear()
		if _, err := p.out.Write(line); err != nil {
			return len(b), err
		}
		s := string(line)
		if strings.HasPrefix(s, colUnits) || (!strings.HasPrefix(s, "#") && strings.TrimSpace(s) != "") {
			if strings.HasPrefix(s, colUnits) {
				p.next = 0
			} else {
				p.next++
			}
			if p.next < len(p.rows) {
				fmt.Fprintf(p.tty, "allreduce-bench: measuring %d B (size %d of %d)...", p.rows[p.next].bytes, p.next+1, len(p.rows))
				p.shown = true
			}
		}
		p.buf = p.buf[i+1:]
	}
}

// clear erases the progress line.
func (p *progress) clear() {
	if p.shown {
		fmt.Fprint(p.tty, "\r\033[K")
		p.shown = false
	}
}

// Close erases the progress line and writes what is left of the table.
func (p *progress) Close() error {
	if p.tty == nil {
		return nil
	}
	p.clear()
	_, err := p.out.Write(p.buf)
	p.buf = nil
	return err
}
