// Package headerset groups header values by name for the decoders of forms
// that carry one name/value pair per entry (the protobuf Header message):
// pbconv's conversion and the agent's fast gRPC decoder.
package headerset

import "github.com/agentwire/agentwire"

// indexMin is the number of distinct names above which a Grouper finds
// names in a map. Below it a linear scan is faster and allocates nothing;
// above it the scan would make grouping quadratic in the header count
// (100,000 distinct names took seconds).
const indexMin = 32

// Grouper builds one agentwire.Headers: names in the order they first
// appear, each name's values in order. The zero value is ready; use one per
// header list.
type Grouper struct {
	index map[string]int // name → position, once there are many names
}

// Add appends value to name's entry in h, adding the entry when name is
// new (reusing the storage of a spare slot of h, Values capacity
// included), and returns h.
func (g *Grouper) Add(h agentwire.Headers, name, value string) agentwire.Headers {
	if i := g.find(h, name); i >= 0 {
		h[i].Values = append(h[i].Values, value)
		return h
	}
	if len(h) < cap(h) {
		h = h[:len(h)+1]
		e := &h[len(h)-1]
		e.Name = name
		e.Values = append(e.Values[:0], value)
	} else {
		h = append(h, agentwire.Header{Name: name, Values: []string{value}})
	}
	switch {
	case g.index != nil:
		g.index[name] = len(h) - 1
	case len(h) > indexMin:
		g.index = make(map[string]int, 2*len(h))
		for i := range h {
			g.index[h[i].Name] = i
		}
	}
	return h
}

func (g *Grouper) find(h agentwire.Headers, name string) int {
	if g.index != nil {
		if i, ok := g.index[name]; ok {
			return i
		}
		return -1
	}
	for i := range h {
		if h[i].Name == name {
			return i
		}
	}
	return -1
}
