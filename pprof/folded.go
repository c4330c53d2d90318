package main

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strings"

	pprofile "github.com/google/pprof/profile"
)

// writeFolded converts the CPU profile at cpuPath into the folded-stack
// format at outPath: one line per distinct stack, the frames from the root
// to the leaf separated by ';', a space and the number of samples. It is
// what flame-graph tools read (flamegraph.pl, inferno, speedscope). Inlined
// calls are frames of their own; a sample labelled side=engine or
// side=agent gets that label as its root frame, so the two sides of an
// in-process run are two towers. Lines are sorted.
func writeFolded(cpuPath, outPath string) error {
	f, err := os.Open(cpuPath)
	if err != nil {
		return err
	}
	p, err := pprofile.Parse(f)
	f.Close()
	if err != nil {
		return err
	}
	idx := -1
	for i, st := range p.SampleType {
		if st.Type == "samples" {
			idx = i
		}
	}
	if idx < 0 {
		return fmt.Errorf("%s: no samples value (not a CPU profile?)", cpuPath)
	}
	counts := map[string]int64{}
	var frames []string
	for _, s := range p.Sample {
		v := s.Value[idx]
		if v == 0 {
			continue
		}
		frames = frames[:0]
		if side := s.Label["side"]; len(side) > 0 {
			frames = append(frames, "side="+side[0])
		}
		// Locations go from the leaf to the root; within a location, the
		// lines go from the innermost inlined call to its caller.
		for i := len(s.Location) - 1; i >= 0; i-- {
			loc := s.Location[i]
			if len(loc.Line) == 0 {
				frames = append(frames, fmt.Sprintf("0x%x", loc.Address))
				continue
			}
			for j := len(loc.Line) - 1; j >= 0; j-- {
				name := "?"
				if fn := loc.Line[j].Function; fn != nil {
					name = fn.Name
				}
				frames = append(frames, strings.NewReplacer(";", ":", " ", "_").Replace(name))
			}
		}
		counts[strings.Join(frames, ";")] += v
	}
	stacks := make([]string, 0, len(counts))
	for k := range counts {
		stacks = append(stacks, k)
	}
	slices.Sort(stacks)
	out, err := os.Create(outPath)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(out)
	for _, k := range stacks {
		fmt.Fprintf(w, "%s %d\n", k, counts[k])
	}
	if err := w.Flush(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
