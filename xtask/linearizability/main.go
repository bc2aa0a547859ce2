// Command linearizability checks recorded client histories against a model of a set of
// compare-and-set registers with porcupine, and explains what it finds.
//
// It is the checker behind `cargo xtask consistency`. Each input file holds one history as JSON
// lines, one completed or abandoned client operation per line, written by the consistency
// suite in tests/consistency:
//
//	{"process":3,"key":"r1","f":"read","invoke":1200,"complete":1900,"outcome":"ok","value":17}
//	{"process":4,"key":"r1","f":"write","arg":18,"invoke":1300,"complete":2100,"outcome":"unknown"}
//	{"process":5,"key":"r0","f":"cas","from":17,"to":19,"invoke":1400,"complete":2000,"outcome":"ok","value":true}
//
// Times are nanoseconds from one monotonic clock. "outcome" is "ok" (the server answered),
// "fail" (the operation certainly had no effect) or "unknown" (it may or may not have taken
// effect). A read's "value" is the register's value or null when the key is absent; a cas's
// "value" says whether it was applied; "from" is null for "only if absent". Every written
// value is unique within a history, so a compare on the value is a compare on the version.
//
// How the history is read, as porcupine prescribes:
//   - "fail" operations and reads without an answer are left out: they had no effect and
//     observed nothing;
//   - an "unknown" write or cas keeps its invocation time and gets a return time after every
//     other operation, with an output that any state accepts, so it may take effect anywhere
//     after its invocation, or (placed last) not at all.
//
// For each history it prints one JSON line on stdout: the verdict of the whole history, the
// verdict of its writes and compare-and-sets alone (reads dropped), and, when the history is
// not linearizable, the path of a file holding the shortest anomalous window it found and of
// porcupine's HTML visualization of that window (partial linearizations included).
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// record is one line of a history file.
type record struct {
	Process  int64           `json:"process"`
	Key      string          `json:"key"`
	F        string          `json:"f"`
	Arg      *int64          `json:"arg,omitempty"`
	From     *int64          `json:"from"`
	To       *int64          `json:"to,omitempty"`
	Invoke   int64           `json:"invoke"`
	Complete *int64          `json:"complete"`
	Outcome  string          `json:"outcome"`
	Value    json.RawMessage `json:"value,omitempty"`
	Error    string          `json:"error,omitempty"`
	Server   string          `json:"server,omitempty"`
}

// absent is the register's value when the key does not exist; written values start at 1.
const absent int64 = 0

// anyState stands for "not known": the state at the start of a window cut from the middle of a
// history. It accepts the first observation and becomes it.
const anyState int64 = -1

type input struct {
	f    string // "read", "write" or "cas"
	arg  int64  // write: the value; cas: the new value
	from int64  // cas: the expected value (absent = only if the key does not exist)
}

type output struct {
	unknown bool  // the outcome is unknown: any state accepts it
	value   int64 // read: the value seen
	applied bool  // cas: whether it was applied
}

// op is one operation of a history, kept with its record for the reports.
type op struct {
	rec   record
	in    input
	out   output
	call  int64
	ret   int64
	index int // line number in the history file, from 1
}

func describeValue(v int64) string {
	switch v {
	case absent:
		return "absent"
	case anyState:
		return "?"
	default:
		return fmt.Sprint(v)
	}
}

// registerModel is a compare-and-set register per key (porcupine partitions by key).
func registerModel() porcupine.Model {
	return porcupine.Model{
		Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
			byKey := map[string][]porcupine.Operation{}
			var keys []string
			for _, o := range history {
				k := o.Metadata.(*op).rec.Key
				if _, seen := byKey[k]; !seen {
					keys = append(keys, k)
				}
				byKey[k] = append(byKey[k], o)
			}
			sort.Strings(keys)
			out := make([][]porcupine.Operation, 0, len(keys))
			for _, k := range keys {
				out = append(out, byKey[k])
			}
			return out
		},
		Init: func() interface{} { return absent },
		Step: func(state, in, out interface{}) (bool, interface{}) {
			s := state.(int64)
			i := in.(input)
			o := out.(output)
			switch i.f {
			case "read":
				if s == anyState {
					return true, o.value
				}
				return o.value == s, s
			case "write":
				return true, i.arg
			case "cas":
				if o.unknown {
					if s == i.from {
						return true, i.arg
					}
					return true, s
				}
				if o.applied {
					return s == i.from || s == anyState, i.arg
				}
				return s != i.from, s
			}
			return false, s
		},
		Hash: func(state interface{}) uint64 { return uint64(state.(int64)) },
		DescribeOperation: func(in, out interface{}) string {
			i := in.(input)
			o := out.(output)
			var res string
			switch {
			case o.unknown:
				res = "unknown"
			case i.f == "read":
				res = describeValue(o.value)
			case i.f == "cas":
				res = fmt.Sprint(o.applied)
			default:
				res = "ok"
			}
			switch i.f {
			case "read":
				return "read() -> " + res
			case "write":
				return fmt.Sprintf("write(%d) -> %s", i.arg, res)
			default:
				return fmt.Sprintf("cas(%s, %d) -> %s", describeValue(i.from), i.arg, res)
			}
		},
		DescribeState: func(state interface{}) string { return describeValue(state.(int64)) },
		DescribeOperationMetadata: func(m interface{}) string {
			o, ok := m.(*op)
			if !ok || o == nil {
				return ""
			}
			return fmt.Sprintf("process %d, server %s, line %d", o.rec.Process, o.rec.Server, o.index)
		},
	}
}

// load reads a history file. Operations that cannot matter are dropped here (see the package
// comment); the counts cover every line.
type counts struct {
	Ops     int `json:"ops"`
	Ok      int `json:"ok"`
	Fail    int `json:"fail"`
	Unknown int `json:"unknown"`
}

func parseValue(raw json.RawMessage) (int64, bool, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return absent, false, nil
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err == nil {
		return 0, b, nil
	}
	var v int64
	if err := json.Unmarshal(raw, &v); err != nil {
		return 0, false, err
	}
	return v, false, nil
}

func load(path string) ([]*op, counts, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, counts{}, err
	}
	defer f.Close()
	var ops []*op
	var c counts
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		var r record
		if err := json.Unmarshal([]byte(text), &r); err != nil {
			return nil, c, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		c.Ops++
		switch r.Outcome {
		case "ok":
			c.Ok++
		case "fail":
			c.Fail++
			continue
		case "unknown":
			c.Unknown++
		default:
			return nil, c, fmt.Errorf("%s:%d: unknown outcome %q", path, line, r.Outcome)
		}
		o := &op{rec: r, call: r.Invoke, index: line}
		if r.Outcome == "unknown" || r.Complete == nil {
			o.ret = math.MaxInt64
			o.out.unknown = true
		} else {
			o.ret = *r.Complete
			if o.ret < o.call {
				return nil, c, fmt.Errorf("%s:%d: completes before it is invoked", path, line)
			}
		}
		switch r.F {
		case "read":
			if o.out.unknown {
				continue // an unanswered read observed nothing
			}
			v, _, err := parseValue(r.Value)
			if err != nil {
				return nil, c, fmt.Errorf("%s:%d: read value: %w", path, line, err)
			}
			o.in = input{f: "read"}
			o.out.value = v
		case "write":
			if r.Arg == nil {
				return nil, c, fmt.Errorf("%s:%d: write without arg", path, line)
			}
			o.in = input{f: "write", arg: *r.Arg}
		case "cas":
			if r.To == nil {
				return nil, c, fmt.Errorf("%s:%d: cas without to", path, line)
			}
			from := absent
			if r.From != nil {
				from = *r.From
			}
			o.in = input{f: "cas", arg: *r.To, from: from}
			if !o.out.unknown {
				_, applied, err := parseValue(r.Value)
				if err != nil {
					return nil, c, fmt.Errorf("%s:%d: cas value: %w", path, line, err)
				}
				o.out.applied = applied
			}
		default:
			return nil, c, fmt.Errorf("%s:%d: unknown operation %q", path, line, r.F)
		}
		ops = append(ops, o)
	}
	if err := sc.Err(); err != nil {
		return nil, c, err
	}
	return ops, c, nil
}

func toPorcupine(ops []*op) []porcupine.Operation {
	out := make([]porcupine.Operation, 0, len(ops))
	for _, o := range ops {
		out = append(out, porcupine.Operation{
			ClientId: int(o.rec.Process),
			Input:    o.in,
			Call:     o.call,
			Output:   o.out,
			Return:   o.ret,
			Metadata: o,
		})
	}
	return out
}

// window cuts the operations of one key down to the time window [a, b], keeping it sound: a
// history that is linearizable stays linearizable under every cut, so an illegal window is a
// real anomaly. Operations that end before a are summed up by an unknown initial state.
// Operations that overlap a or b lose what the cut cannot see: reads are dropped, writes and
// compare-and-sets get an unknown outcome (they may take effect, or not, anywhere after
// max(call, a)). Operations invoked after b are left out.
func window(ops []*op, a, b int64) []porcupine.Operation {
	var out []porcupine.Operation
	for _, o := range ops {
		if o.call > b || o.ret < a {
			continue
		}
		in, res := o.in, o.out
		call, ret := o.call, o.ret
		if call < a || ret > b {
			if in.f == "read" {
				continue
			}
			res = output{unknown: true}
			ret = math.MaxInt64
			if call < a {
				call = a
			}
		}
		out = append(out, porcupine.Operation{
			ClientId: int(o.rec.Process),
			Input:    in,
			Call:     call,
			Output:   res,
			Return:   ret,
			Metadata: o,
		})
	}
	return out
}

// windowModel checks one key's window: from an unknown state, or from the absent key when
// the window starts with the history.
func windowModel(fromStart bool) porcupine.Model {
	m := registerModel()
	m.Partition = nil
	if !fromStart {
		m.Init = func() interface{} { return anyState }
	}
	return m
}

// historyStart is the start of a window that begins with the history.
const historyStart int64 = math.MinInt64

// shortestWindow searches the operations of one illegal key for a short window that is still
// illegal on its own: first the earliest end b (over completion times) such that the window
// from the beginning to b is illegal, then the latest start a for that end.
func shortestWindow(ops []*op, timeout time.Duration) (int64, int64, bool) {
	illegal := func(a, b int64) bool {
		w := window(ops, a, b)
		if len(w) == 0 {
			return false
		}
		return porcupine.CheckOperationsTimeout(windowModel(a == historyStart), w, timeout) == porcupine.Illegal
	}
	var ends, starts []int64
	for _, o := range ops {
		starts = append(starts, o.call)
		if o.ret != math.MaxInt64 {
			ends = append(ends, o.ret)
		}
	}
	sort.Slice(ends, func(i, j int) bool { return ends[i] < ends[j] })
	sort.Slice(starts, func(i, j int) bool { return starts[i] < starts[j] })
	if len(ends) == 0 {
		return 0, 0, false
	}
	first := historyStart
	// Binary search for the earliest illegal end, then step forward in case illegality is
	// not monotone in b.
	lo, hi := 0, len(ends)-1
	if !illegal(first, ends[hi]) {
		return 0, 0, false
	}
	for lo < hi {
		mid := (lo + hi) / 2
		if illegal(first, ends[mid]) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	b := ends[lo]
	// The latest start: walk back from b until the window turns illegal.
	a := first
	for i := len(starts) - 1; i >= 0; i-- {
		if starts[i] > b {
			continue
		}
		if illegal(starts[i], b) {
			a = starts[i]
			break
		}
	}
	return a, b, true
}

type verdict struct {
	History string `json:"history"`
	counts
	Linearizable string `json:"linearizable"`
	// WritesLinearizable is the verdict of the writes and compare-and-sets alone.
	WritesLinearizable string `json:"writes_linearizable"`
	Key                string `json:"key,omitempty"`
	Anomaly            string `json:"anomaly,omitempty"`
	AnomalyOps         int    `json:"anomaly_ops,omitempty"`
	Visualization      string `json:"visualization,omitempty"`
	Error              string `json:"error,omitempty"`
}

func word(r porcupine.CheckResult) string {
	switch r {
	case porcupine.Ok:
		return "yes"
	case porcupine.Illegal:
		return "no"
	default:
		return "unknown (checker timed out)"
	}
}

type anomalyReport struct {
	History     string   `json:"history"`
	Key         string   `json:"key"`
	WindowStart int64    `json:"window_start"`
	WindowEnd   int64    `json:"window_end"`
	Explanation string   `json:"explanation"`
	Operations  []record `json:"operations"`
	// Writers are the operations outside the window that wrote the values it read or
	// compared against, for context.
	Writers []record `json:"writers,omitempty"`
	// LongestPartialLinearization is porcupine's longest linearizable prefix of the window,
	// as operation descriptions in the order it linearized them.
	LongestPartialLinearization []string `json:"longest_partial_linearization"`
}

// unobservedUnknowns drops the operations with an unknown outcome whose written value nobody
// ever saw (no read returned it, no compare-and-set expected it). This only speeds the search
// up: an unknown operation may always be placed after every other one, where it changes
// nothing anybody observes, so a history that is linearizable without such operations is
// linearizable with them. (The converse does not hold, so an illegal verdict is re-checked on
// the whole history.)
func unobservedUnknowns(ops []*op) []*op {
	seen := map[string]map[int64]bool{}
	for _, o := range ops {
		if seen[o.rec.Key] == nil {
			seen[o.rec.Key] = map[int64]bool{}
		}
		switch {
		case o.in.f == "read":
			seen[o.rec.Key][o.out.value] = true
		case o.in.f == "cas":
			seen[o.rec.Key][o.in.from] = true
		}
	}
	var kept []*op
	for _, o := range ops {
		if o.out.unknown && o.in.f != "read" && !seen[o.rec.Key][o.in.arg] {
			continue
		}
		kept = append(kept, o)
	}
	return kept
}

// decide checks ops, first without the unknown operations nobody observed.
func decide(model porcupine.Model, ops []*op, timeout time.Duration) porcupine.CheckResult {
	pruned := unobservedUnknowns(ops)
	if len(pruned) < len(ops) {
		if porcupine.CheckOperationsTimeout(model, toPorcupine(pruned), timeout) == porcupine.Ok {
			return porcupine.Ok
		}
	}
	return porcupine.CheckOperationsTimeout(model, toPorcupine(ops), timeout)
}

func check(path string, timeout time.Duration) verdict {
	v := verdict{History: path}
	ops, c, err := load(path)
	v.counts = c
	if err != nil {
		v.Error = err.Error()
		return v
	}
	model := registerModel()
	var writes []*op
	for _, o := range ops {
		if o.in.f != "read" {
			writes = append(writes, o)
		}
	}
	v.WritesLinearizable = word(decide(model, writes, timeout))
	res := decide(model, ops, timeout)
	v.Linearizable = word(res)
	if res != porcupine.Illegal {
		return v
	}
	// Find the first key whose history is illegal, then its shortest illegal window.
	byKey := map[string][]*op{}
	var keys []string
	for _, o := range ops {
		if _, seen := byKey[o.rec.Key]; !seen {
			keys = append(keys, o.rec.Key)
		}
		byKey[o.rec.Key] = append(byKey[o.rec.Key], o)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if decide(model, byKey[k], timeout) != porcupine.Illegal {
			continue
		}
		v.Key = k
		a, b, found := shortestWindow(byKey[k], timeout)
		if !found {
			v.Error = "the key's history is illegal but no shorter illegal window was found"
			return v
		}
		w := window(byKey[k], a, b)
		wm := windowModel(a == historyStart)
		_, info := porcupine.CheckOperationsVerbose(wm, w, timeout)
		base := strings.TrimSuffix(path, filepath.Ext(path))
		report := anomalyReport{
			History:     path,
			Key:         k,
			WindowStart: a,
			WindowEnd:   b,
			Explanation: "These operations, cut from the history at the window's bounds, cannot be " +
				"ordered as one register would order them, whatever the register held at the " +
				"window's start. Operations overlapping a bound count as may-or-may-not-have-" +
				"happened; reads overlapping a bound are dropped.",
		}
		inWindow := map[*op]bool{}
		seen := map[int64]bool{}
		for _, o := range w {
			m := o.Metadata.(*op)
			inWindow[m] = true
			report.Operations = append(report.Operations, m.rec)
			switch m.in.f {
			case "read":
				seen[m.out.value] = true
			case "cas":
				seen[m.in.from] = true
			}
		}
		for _, o := range byKey[k] {
			if o.in.f != "read" && seen[o.in.arg] && !inWindow[o] {
				report.Writers = append(report.Writers, o.rec)
			}
		}
		if a == historyStart && len(w) > 0 {
			report.WindowStart = w[0].Call
		}
		for _, partial := range info.PartialLinearizationsOperations() {
			longest := []porcupine.Operation{}
			for _, p := range partial {
				if len(p) > len(longest) {
					longest = p
				}
			}
			for _, o := range longest {
				report.LongestPartialLinearization = append(report.LongestPartialLinearization,
					wm.DescribeOperation(o.Input, o.Output))
			}
		}
		v.AnomalyOps = len(report.Operations)
		v.Anomaly = base + ".anomaly.json"
		var buf strings.Builder
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		err := enc.Encode(report)
		if err == nil {
			err = os.WriteFile(v.Anomaly, []byte(buf.String()), 0o644)
		}
		if err != nil {
			v.Error = err.Error()
			return v
		}
		v.Visualization = base + ".anomaly.html"
		if err := porcupine.VisualizePath(wm, info, v.Visualization); err != nil {
			v.Error = err.Error()
		}
		return v
	}
	v.Error = "the whole history is illegal but no single key is (the model partitions by key)"
	return v
}

func main() {
	timeout := flag.Duration("timeout", time.Minute, "give up on one check after this long")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: linearizability [-timeout D] HISTORY.jsonl...\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	enc := json.NewEncoder(os.Stdout)
	failed := false
	for _, path := range flag.Args() {
		v := check(path, *timeout)
		if v.Error != "" {
			failed = true
		}
		if err := enc.Encode(v); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	if failed {
		fmt.Fprintln(os.Stderr, errors.New("linearizability: some histories could not be checked"))
		os.Exit(1)
	}
}
