// Command report turns the raw results that the bench scripts append to
// bench/results/*.jsonl (one JSON object per measured run; see
// results_add in bench/lib.sh) into the README's performance table.
//
//	go run ./bench/report                                  # newest compare file, to stdout
//	go run ./bench/report bench/results/A.jsonl B.jsonl    # these files
//	go run ./bench/report -readme README.md                # rewrite the README's section
//	go run ./bench/report -format svg -o compare.svg       # draw the comparison
//
// Runs of the same configuration (transport, in-flight level,
// implementation and encoding, A/B build) are reduced to their median; the
// ratios are to the baseline's median at the same transport and in-flight
// level. With -readme, the text between the lines <!-- bench:begin --> and
// <!-- bench:end --> of that file is replaced by the generated section
// (`make bench-report`).
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Run is one line of a results file.
type Run struct {
	Script  string `json:"script"`
	Commit  string `json:"commit"`
	Date    string `json:"date"`
	Impl    string `json:"impl"`
	Machine struct {
		NProc int    `json:"nproc"`
		CPU   string `json:"cpu"`
		Go    string `json:"go"`
		OS    string `json:"os"`
	} `json:"machine"`
	Settings struct {
		Transport   string `json:"transport"`
		Encoding    string `json:"encoding"`
		Concurrency int    `json:"concurrency"`
		Duration    string `json:"duration"`
		GOMAXPROCS  string `json:"gomaxprocs"`
		Build       string `json:"build"`
	} `json:"settings"`
	Values map[string]*float64 `json:"values"`
}

// The measured values a table shows, in column order.
var columns = []struct {
	key, head, format string
	ratio             bool // followed by a "× baseline" column
}{
	{"requests_per_sec", "req/s", "%.0f", true},
	{"allocs_per_request", "allocs/req", "%.1f", true},
	{"client_cpu_us_per_request", "client CPU µs/req", "%.1f", false},
	{"agent_cpu_us_per_request", "agent CPU µs/req", "%.1f", false},
	{"p50_us", "p50 µs", "%.0f", false},
	{"p99_us", "p99 µs", "%.0f", false},
	{"errors", "errors", "%.0f", false},
}

const (
	beginMarker = "<!-- bench:begin -->"
	endMarker   = "<!-- bench:end -->"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	format := fs.String("format", "markdown", "output format: markdown (the README's table), or svg or png (the comparison drawn: requests/s and p50/p99 latency against requests in flight)")
	outFile := fs.String("o", "", "write the output to this file instead of stdout")
	readme := fs.String("readme", "", "rewrite the section between "+beginMarker+" and "+endMarker+" of this file instead of printing")
	dir := fs.String("dir", "bench/results", "where to find the newest compare results when no file is named")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *format != "markdown" && *format != "svg" && *format != "png" {
		return fmt.Errorf("format %q: want markdown, svg or png", *format)
	}
	if *format != "markdown" && *readme != "" {
		return errors.New("-readme takes the markdown format")
	}
	files := fs.Args()
	if len(files) == 0 {
		f, err := newest(*dir, "compare")
		if err != nil {
			return err
		}
		files = []string{f}
	}
	var runs []Run
	for _, f := range files {
		rs, err := load(f)
		if err != nil {
			return err
		}
		runs = append(runs, rs...)
	}
	if *outFile != "" {
		f, err := os.Create(*outFile)
		if err != nil {
			return err
		}
		defer f.Close()
		stdout = f
	}
	if *format != "markdown" {
		var b bytes.Buffer
		draw := SVG
		if *format == "png" {
			draw = PNG
		}
		if err := draw(runs, &b); err != nil {
			return err
		}
		_, err := stdout.Write(b.Bytes())
		return err
	}
	md, err := Markdown(runs, files)
	if err != nil {
		return err
	}
	if *readme == "" {
		_, err := io.WriteString(stdout, md)
		return err
	}
	old, err := os.ReadFile(*readme)
	if err != nil {
		return err
	}
	out, err := Splice(old, md)
	if err != nil {
		return fmt.Errorf("%s: %w", *readme, err)
	}
	return os.WriteFile(*readme, out, 0o644)
}

// newest returns the results file of script in dir whose name sorts last
// (the names start with the UTC start time).
func newest(dir, script string) (string, error) {
	m, err := filepath.Glob(filepath.Join(dir, "*-"+script+"-*.jsonl"))
	if err != nil {
		return "", err
	}
	if len(m) == 0 {
		return "", fmt.Errorf("no %s results in %s", script, dir)
	}
	slices.Sort(m)
	return m[len(m)-1], nil
}

// load reads one results file: one JSON object per non-empty line.
func load(path string) ([]Run, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var runs []Run
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var r Run
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		if r.Impl == "" || r.Settings.Transport == "" {
			return nil, fmt.Errorf("%s:%d: no impl or transport", path, line)
		}
		runs = append(runs, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return runs, nil
}

// label names a run's implementation in the table: baseline or agentwire,
// with the encoding on the unix socket, and the A/B build when there is one.
func label(r *Run) string {
	l := r.Impl
	if r.Settings.Encoding != "" && r.Settings.Encoding != "protobuf" {
		l += "-" + r.Settings.Encoding
	}
	if r.Settings.Build != "" {
		l += " (" + r.Settings.Build + ")"
	}
	return l
}

type group struct {
	transport string
	conc      int
	label     string
	baseline  bool
	runs      []*Run
}

// median of key over g's runs that have it (NaN when none does).
func (g *group) median(key string) float64 {
	var v []float64
	for _, r := range g.runs {
		if p := r.Values[key]; p != nil {
			v = append(v, *p)
		}
	}
	if len(v) == 0 {
		return math.NaN()
	}
	slices.Sort(v)
	if n := len(v); n%2 == 1 {
		return v[n/2]
	} else {
		return (v[n/2-1] + v[n/2]) / 2
	}
}

// groupRuns groups runs by transport, in-flight count and implementation
// label, in the order they first appear.
func groupRuns(runs []Run) []*group {
	var groups []*group
	index := map[string]*group{}
	for i := range runs {
		r := &runs[i]
		k := fmt.Sprintf("%s\x00%d\x00%s", r.Settings.Transport, r.Settings.Concurrency, label(r))
		g := index[k]
		if g == nil {
			g = &group{transport: r.Settings.Transport, conc: r.Settings.Concurrency, label: label(r), baseline: r.Impl == "baseline"}
			index[k] = g
			groups = append(groups, g)
		}
		g.runs = append(g.runs, r)
	}
	return groups
}

// Markdown renders runs as the README's section: one line saying where,
// when and how they were measured, and the table. files are named as the
// source of the numbers.
func Markdown(runs []Run, files []string) (string, error) {
	if len(runs) == 0 {
		return "", errors.New("no runs")
	}
	groups := groupRuns(runs)
	base := func(g *group) *group {
		for _, b := range groups {
			if b.baseline && b.transport == g.transport && b.conc == g.conc {
				return b
			}
		}
		return nil
	}
	multi := slices.ContainsFunc(groups, func(g *group) bool { return len(g.runs) > 1 })
	// With floor runs (compare.sh runs `agentwire floor` beside agentwire),
	// a last column gives each row's requests/s as a fraction of the floor's
	// at the same transport and in-flight count.
	floorOf := func(g *group) *group {
		for _, f := range groups {
			if f.runs[0].Impl == "floor" && f.transport == g.transport && f.conc == g.conc {
				return f
			}
		}
		return nil
	}
	withFloor := slices.ContainsFunc(groups, func(g *group) bool { return g.runs[0].Impl == "floor" })

	var b strings.Builder
	distinct := func(f func(*Run) string) string {
		var vs []string
		for i := range runs {
			if v := f(&runs[i]); !slices.Contains(vs, v) {
				vs = append(vs, v)
			}
		}
		return strings.Join(vs, ", ")
	}
	dates := make([]string, 0, len(runs))
	for i := range runs {
		dates = append(dates, runs[i].Date)
	}
	slices.Sort(dates)
	when := dates[0]
	if last := dates[len(dates)-1]; last != when {
		when += " to " + last
	}
	src := make([]string, len(files))
	for i, f := range files {
		src[i] = "`" + filepath.ToSlash(f) + "`"
	}
	fmt.Fprintf(&b, "Generated by `go run ./bench/report` (`make bench-report`) from %s: %s, %s at commit %s, %s per run, GOMAXPROCS %s. Machine: %s cores (%s), %s, %s.",
		strings.Join(src, ", "), distinct(func(r *Run) string { return r.Script }), when,
		distinct(func(r *Run) string { return r.Commit }), distinct(func(r *Run) string { return r.Settings.Duration }),
		distinct(func(r *Run) string { return r.Settings.GOMAXPROCS }),
		distinct(func(r *Run) string { return fmt.Sprint(r.Machine.NProc) }), distinct(func(r *Run) string { return r.Machine.CPU }),
		distinct(func(r *Run) string { return r.Machine.Go }), distinct(func(r *Run) string { return r.Machine.OS }))
	if multi {
		b.WriteString(" Each row is the median of its runs.")
	}
	b.WriteString("\n\n")

	head := []string{"transport", "in flight", "implementation"}
	align := []string{"---", "---:", "---"}
	if multi {
		head, align = append(head, "runs"), append(align, "---:")
	}
	for _, c := range columns {
		head, align = append(head, c.head), append(align, "---:")
		if c.ratio {
			head, align = append(head, "× baseline"), append(align, "---:")
		}
	}
	if withFloor {
		head, align = append(head, "of the floor's req/s"), append(align, "---:")
	}
	b.WriteString("| " + strings.Join(head, " | ") + " |\n")
	b.WriteString("|" + strings.Join(align, "|") + "|\n")
	for _, g := range groups {
		row := []string{g.transport, fmt.Sprint(g.conc), g.label}
		if multi {
			row = append(row, fmt.Sprint(len(g.runs)))
		}
		bg := base(g)
		for _, c := range columns {
			v := g.median(c.key)
			row = append(row, num(c.format, v))
			if c.ratio {
				r := math.NaN()
				if bg != nil {
					if bv := bg.median(c.key); bv != 0 {
						r = v / bv
					}
				}
				row = append(row, num("%.2f", r))
			}
		}
		if withFloor {
			r := math.NaN()
			if f := floorOf(g); f != nil {
				if fv := f.median("requests_per_sec"); fv != 0 {
					r = g.median("requests_per_sec") / fv
				}
			}
			row = append(row, num("%.2f", r))
		}
		b.WriteString("| " + strings.Join(row, " | ") + " |\n")
	}
	return b.String(), nil
}

// num formats v, or "-" when it is unknown.
func num(format string, v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "-"
	}
	return fmt.Sprintf(format, v)
}

// Splice replaces the lines strictly between the begin and end marker lines
// of doc with section (the markers stay). It fails unless each marker
// occurs exactly once, begin before end.
func Splice(doc []byte, section string) ([]byte, error) {
	s := string(doc)
	if strings.Count(s, beginMarker) != 1 || strings.Count(s, endMarker) != 1 {
		return nil, fmt.Errorf("want exactly one %s and one %s", beginMarker, endMarker)
	}
	i := strings.Index(s, beginMarker) + len(beginMarker)
	j := strings.Index(s, endMarker)
	if j < i {
		return nil, fmt.Errorf("%s comes before %s", endMarker, beginMarker)
	}
	if !strings.HasSuffix(section, "\n") {
		section += "\n"
	}
	return []byte(s[:i] + "\n" + section + s[j:]), nil
}
