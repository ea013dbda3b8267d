package launchenv

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MaxHosts bounds what one host list may expand to.
const MaxHosts = 1 << 16

// ExpandHostlist expands SLURM's compressed host list syntax:
// comma-separated entries, each a name in which bracketed lists of
// numbers and ranges stand for every value, zero-padded to the width of
// the range's first bound ("node[01-03,07],gpu-a[1-2]" is node01,
// node02, node03, node07, gpu-a1, gpu-a2; "r[1-2]n[1-2]" is r1n1, r1n2,
// r2n1, r2n2). It refuses unbalanced brackets, empty names, descending
// ranges and lists of more than MaxHosts hosts.
func ExpandHostlist(s string) ([]string, error) {
	var out []string
	for _, entry := range splitTop(s) {
		if entry == "" {
			return nil, errors.New("an empty entry")
		}
		hosts, err := expandEntry(entry, MaxHosts-len(out))
		if err != nil {
			return nil, fmt.Errorf("%q: %w", entry, err)
		}
		out = append(out, hosts...)
	}
	if len(out) == 0 {
		return nil, errors.New("no hosts")
	}
	return out, nil
}

// splitTop splits s at the commas outside brackets.
func splitTop(s string) []string {
	var parts []string
	depth, start := 0, 0
	for i, c := range s {
		switch c {
		case '[':
			depth++
		case ']':
			depth--
		case ',':
			if depth == 0 {
				parts = append(parts, s[start:i])
				start = i + 1
			}
		}
	}
	return append(parts, s[start:])
}

// expandEntry expands one name with bracketed parts, at most limit hosts.
func expandEntry(e string, limit int) ([]string, error) {
	open := strings.IndexByte(e, '[')
	if open < 0 {
		if strings.ContainsAny(e, "]") {
			return nil, errors.New("a ']' without '['")
		}
		return []string{e}, nil
	}
	end := strings.IndexByte(e[open:], ']')
	if end < 0 {
		return nil, errors.New("a '[' without ']'")
	}
	end += open
	prefix, body, rest := e[:open], e[open+1:end], e[end+1:]
	if strings.ContainsAny(prefix, "]") || strings.ContainsAny(body, "[") {
		return nil, errors.New("nested or unbalanced brackets")
	}
	values, err := expandRanges(body, limit)
	if err != nil {
		return nil, err
	}
	tails, err := expandEntry(rest, limit)
	if err != nil {
		return nil, err
	}
	if len(values)*len(tails) > limit {
		return nil, fmt.Errorf("more than %d hosts", MaxHosts)
	}
	out := make([]string, 0, len(values)*len(tails))
	for _, v := range values {
		for _, t := range tails {
			out = append(out, prefix+v+t)
		}
	}
	return out, nil
}

// expandRanges expands "01-03,07" into 01, 02, 03, 07.
func expandRanges(body string, limit int) ([]string, error) {
	if body == "" {
		return nil, errors.New("empty brackets")
	}
	var out []string
	for _, r := range strings.Split(body, ",") {
		lo, hi, isRange := strings.Cut(r, "-")
		if !isRange {
			hi = lo
		}
		a, errA := number(lo)
		b, errB := number(hi)
		switch {
		case errA != nil:
			return nil, errA
		case errB != nil:
			return nil, errB
		case b < a:
			return nil, fmt.Errorf("descending range %q", r)
		case b-a >= uint64(limit-len(out)):
			return nil, fmt.Errorf("more than %d hosts", MaxHosts)
		}
		width := len(lo)
		for v := a; v <= b; v++ {
			s := strconv.FormatUint(v, 10)
			if len(s) < width {
				s = strings.Repeat("0", width-len(s)) + s
			}
			out = append(out, s)
		}
	}
	return out, nil
}

// number reads a decimal bound.
func number(s string) (uint64, error) {
	if s == "" || len(s) > 9 || strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	return strconv.ParseUint(s, 10, 64)
}

// TasksPerNode expands SLURM_TASKS_PER_NODE ("2(x3),1": 2, 2, 2, 1).
func TasksPerNode(s string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		n, rep := part, 1
		if i := strings.IndexByte(part, '('); i >= 0 {
			r, ok := strings.CutSuffix(part[i+1:], ")")
			r, ok2 := strings.CutPrefix(r, "x")
			var err error
			if rep, err = strconv.Atoi(r); !ok || !ok2 || err != nil || rep < 1 || rep > MaxHosts {
				return nil, fmt.Errorf("%q is not COUNT(xREPEAT)", part)
			}
			n = part[:i]
		}
		c, err := strconv.Atoi(n)
		if err != nil || c < 0 {
			return nil, fmt.Errorf("%q is not a count", n)
		}
		if len(out)+rep > MaxHosts {
			return nil, fmt.Errorf("more than %d nodes", MaxHosts)
		}
		for range rep {
			out = append(out, c)
		}
	}
	return out, nil
}
