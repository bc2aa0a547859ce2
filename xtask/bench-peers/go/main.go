// Command consul-go-bench is the official Go client's contender for `cargo xtask bench`
// (github.com/hashicorp/consul/api, used as its documentation shows: api.NewClient with the
// default config, then client.KV()).
//
// It speaks the harness contract of crates/consul-kv-bench/src/harness.rs:
//
//	--target URL --workload get|set|cas|items|keys|watch [--inflight N]
//	[--iterations N | --seconds S] [--warmup N] [--keys N] [--value-size B]
//	[--watchers N] [--rounds N] [--prefix P] [--key K]
//
// and prints one JSON object on one line. Every operation is timed with time.Now (monotonic);
// percentiles are nearest-rank over all samples of the measured phase.
package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
)

type params struct {
	target     string
	workload   string
	inflight   int
	iterations int64
	seconds    float64
	warmup     int64
	keys       int
	valueSize  int
	watchers   int
	rounds     int
	prefix     string
	key        string
}

type outcome struct {
	Contender   string  `json:"contender"`
	Workload    string  `json:"workload"`
	Inflight    int     `json:"inflight"`
	Count       uint64  `json:"count"`
	Errors      uint64  `json:"errors"`
	Seconds     float64 `json:"seconds"`
	OpsPerSec   float64 `json:"ops_per_sec"`
	P50Us       float64 `json:"p50_us"`
	P99Us       float64 `json:"p99_us"`
	MeanUs      float64 `json:"mean_us"`
	MaxUs       float64 `json:"max_us"`
	Entries     *uint64 `json:"entries"`
	RssDeltaKb  *uint64 `json:"rss_delta_kb"`
	HwmKb       *uint64 `json:"hwm_kb"`
	Unsupported bool    `json:"unsupported"`
	Note        string  `json:"note"`
}

var defaultKeys = map[string]string{
	"get": "bench/get", "set": "bench/set", "cas": "bench/cas",
	"items": "bench/items/", "keys": "bench/items/", "watch": "bench/watch",
}

func parseArgs(args []string) (params, error) {
	p := params{inflight: 1, iterations: 1000, warmup: -1, valueSize: 128, watchers: 1000, rounds: 5}
	for i := 0; i < len(args); i += 2 {
		if i+1 >= len(args) {
			return p, fmt.Errorf("%s needs a value", args[i])
		}
		v := args[i+1]
		var err error
		switch args[i] {
		case "--target":
			p.target = strings.TrimRight(v, "/")
		case "--workload":
			p.workload = v
		case "--contender":
		case "--inflight":
			p.inflight, err = strconv.Atoi(v)
		case "--iterations":
			p.iterations, err = strconv.ParseInt(v, 10, 64)
		case "--seconds":
			p.seconds, err = strconv.ParseFloat(v, 64)
		case "--warmup":
			p.warmup, err = strconv.ParseInt(v, 10, 64)
		case "--keys":
			p.keys, err = strconv.Atoi(v)
		case "--value-size":
			p.valueSize, err = strconv.Atoi(v)
		case "--watchers":
			p.watchers, err = strconv.Atoi(v)
		case "--rounds":
			p.rounds, err = strconv.Atoi(v)
		case "--prefix":
			p.prefix = v
		case "--key":
			p.key = v
		default:
			return p, fmt.Errorf("unknown flag %q", args[i])
		}
		if err != nil {
			return p, fmt.Errorf("%s: %v", args[i], err)
		}
	}
	if p.target == "" || defaultKeys[p.workload] == "" {
		return p, fmt.Errorf("--target and a known --workload are required")
	}
	list := p.workload == "items" || p.workload == "keys"
	if p.warmup < 0 {
		p.warmup = 100
		if list {
			p.warmup = 1
		}
	}
	if p.prefix == "" {
		p.prefix = "bench/items/"
	}
	if p.key == "" {
		p.key = defaultKeys[p.workload]
	}
	if p.inflight < 1 {
		p.inflight = 1
	}
	return p, nil
}

func peakRssKb() *uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			v, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err == nil {
				return &v
			}
		}
	}
	return nil
}

func percentile(sorted []int64, p float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	if rank < 1 {
		rank = 1
	}
	if rank > len(sorted) {
		rank = len(sorted)
	}
	return sorted[rank-1]
}

func (o *outcome) fill(samples []int64, seconds float64) {
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	o.Count = uint64(len(samples))
	o.Seconds = seconds
	if seconds > 0 {
		o.OpsPerSec = float64(o.Count) / seconds
	}
	o.P50Us = float64(percentile(samples, 50)) / 1e3
	o.P99Us = float64(percentile(samples, 99)) / 1e3
	if len(samples) > 0 {
		o.MaxUs = float64(samples[len(samples)-1]) / 1e3
		var sum float64
		for _, s := range samples {
			sum += float64(s)
		}
		o.MeanUs = sum / float64(len(samples)) / 1e3
	}
}

type bench struct {
	p       params
	kv      *api.KV
	value   []byte
	entries atomic.Uint64
}

func (b *bench) one() error {
	p := b.p
	switch p.workload {
	case "get":
		pair, _, err := b.kv.Get(p.key, nil)
		if err != nil {
			return err
		}
		if pair == nil {
			return fmt.Errorf("%s does not exist", p.key)
		}
	case "set":
		if _, err := b.kv.Put(&api.KVPair{Key: p.key, Value: b.value}, nil); err != nil {
			return err
		}
	case "cas":
		for i := 0; i < 1000; i++ {
			pair, _, err := b.kv.Get(p.key, nil)
			if err != nil {
				return err
			}
			var idx uint64
			if pair != nil {
				idx = pair.ModifyIndex
			}
			ok, _, err := b.kv.CAS(&api.KVPair{Key: p.key, Value: b.value, ModifyIndex: idx}, nil)
			if err != nil {
				return err
			}
			if ok {
				return nil
			}
		}
		return fmt.Errorf("1000 CAS conflicts in a row")
	case "items", "keys":
		var n int
		if p.workload == "items" {
			pairs, _, err := b.kv.List(p.prefix, nil)
			if err != nil {
				return err
			}
			n = len(pairs)
		} else {
			keys, _, err := b.kv.Keys(p.prefix, "", nil)
			if err != nil {
				return err
			}
			n = len(keys)
		}
		b.entries.Store(uint64(n))
		if p.keys != 0 && n != p.keys {
			return fmt.Errorf("expected %d entries under %s, got %d", p.keys, p.prefix, n)
		}
	}
	return nil
}

type driven struct {
	samples  []int64
	errors   uint64
	firstErr string
	fatal    string
}

func (b *bench) drive(limit int64, d time.Duration) driven {
	var all driven
	if limit == 0 && d == 0 {
		return all
	}
	var taken atomic.Int64
	var stop atomic.Bool
	deadline := time.Now().Add(d)
	results := make([]driven, b.p.inflight)
	var wg sync.WaitGroup
	for w := 0; w < b.p.inflight; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := driven{samples: make([]int64, 0, 4096)}
			for !stop.Load() {
				if d > 0 {
					if !time.Now().Before(deadline) {
						break
					}
				} else if taken.Add(1) > limit {
					break
				}
				t := time.Now()
				if err := b.one(); err != nil {
					r.errors++
					if r.firstErr == "" {
						r.firstErr = err.Error()
					}
					if r.errors >= 100 {
						r.fatal = "100 operations failed; first: " + r.firstErr
						stop.Store(true)
						break
					}
					continue
				}
				r.samples = append(r.samples, time.Since(t).Nanoseconds())
			}
			results[w] = r
		}(w)
	}
	wg.Wait()
	for _, r := range results {
		all.samples = append(all.samples, r.samples...)
		all.errors += r.errors
		if all.firstErr == "" {
			all.firstErr = r.firstErr
		}
		if all.fatal == "" {
			all.fatal = r.fatal
		}
	}
	return all
}

func (b *bench) runOps(o *outcome) {
	p := b.p
	if p.workload == "get" {
		pair, _, err := b.kv.Get(p.key, nil)
		if err == nil && pair == nil {
			_, err = b.kv.Put(&api.KVPair{Key: p.key, Value: b.value}, nil)
		}
		if err != nil {
			o.Errors, o.Note = 1, err.Error()
			return
		}
	}
	before := peakRssKb()
	warm := b.drive(p.warmup, 0)
	if warm.fatal != "" {
		o.Errors, o.Note = 1, warm.fatal
		return
	}
	start := time.Now()
	var m driven
	if p.seconds > 0 {
		m = b.drive(0, time.Duration(p.seconds*float64(time.Second)))
	} else {
		m = b.drive(p.iterations, 0)
	}
	secs := time.Since(start).Seconds()
	if m.fatal != "" {
		o.Errors, o.Note = 1, m.fatal
		return
	}
	o.fill(m.samples, secs)
	o.Errors = warm.errors + m.errors
	o.Note = warm.firstErr
	if o.Note == "" {
		o.Note = m.firstErr
	}
	if p.workload == "items" || p.workload == "keys" {
		n := b.entries.Load()
		o.Entries = &n
		after := peakRssKb()
		o.HwmKb = after
		if after != nil && before != nil {
			d := *after - *before
			if *after < *before {
				d = 0
			}
			o.RssDeltaKb = &d
		}
	}
}

func roundOf(v []byte) int {
	s, ok := strings.CutPrefix(string(v), "round-")
	if !ok {
		return -1
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}

type wake struct {
	round int
	at    time.Time
}

// runWatch: watchers each follow the key with blocking queries; each round the writer waits
// until every watcher waits for it, writes "round-R" and records how long each watcher took
// to see it (from just before the write was sent).
func (b *bench) runWatch(o *outcome) {
	p := b.p
	n, rounds := p.watchers, p.rounds
	o.Inflight = n
	if _, err := b.kv.Put(&api.KVPair{Key: p.key, Value: []byte("round-0")}, nil); err != nil {
		o.Errors, o.Note = 1, err.Error()
		return
	}
	ready := make([]atomic.Int64, rounds+1)
	seen := make([]atomic.Int64, rounds+1)
	var failed atomic.Int64
	var mu sync.Mutex
	wakes := make([]wake, 0, n*rounds)
	var firstErr string
	for w := 0; w < n; w++ {
		go func() {
			fail := func(err error) {
				failed.Add(1)
				mu.Lock()
				if firstErr == "" {
					firstErr = err.Error()
				}
				mu.Unlock()
			}
			pair, meta, err := b.kv.Get(p.key, nil)
			if err != nil {
				fail(err)
				return
			}
			idx := meta.LastIndex
			want := 1
			if pair != nil && roundOf(pair.Value) >= 0 {
				want = roundOf(pair.Value) + 1
			}
			for want <= rounds {
				ready[want].Add(1)
				for {
					pair, meta, err := b.kv.Get(p.key, &api.QueryOptions{WaitIndex: idx, WaitTime: 30 * time.Second})
					now := time.Now()
					if err != nil {
						fail(err)
						return
					}
					idx = meta.LastIndex
					if pair == nil {
						continue
					}
					r := roundOf(pair.Value)
					if r >= want {
						if r == want {
							mu.Lock()
							wakes = append(wakes, wake{r, now})
							mu.Unlock()
						}
						seen[r].Add(1)
						want = r + 1
						break
					}
				}
			}
		}()
	}
	written := make([]time.Time, rounds+1)
	done := func(c *atomic.Int64) bool { return c.Load()+failed.Load() >= int64(n) }
	var first time.Time
	for r := 1; r <= rounds; r++ {
		until := time.Now().Add(30 * time.Second)
		for !done(&ready[r]) && time.Now().Before(until) {
			time.Sleep(2 * time.Millisecond)
		}
		if failed.Load() >= int64(n) {
			break
		}
		// The same settle rule as the harness: 600 ms + 0.1 ms per watcher.
		time.Sleep(time.Duration(600+n/10) * time.Millisecond)
		t0 := time.Now()
		if _, err := b.kv.Put(&api.KVPair{Key: p.key, Value: []byte(fmt.Sprintf("round-%d", r))}, nil); err != nil {
			o.Errors, o.Note = 1, err.Error()
			return
		}
		written[r] = t0
		if first.IsZero() {
			first = t0
		}
		until = time.Now().Add(30 * time.Second)
		for !done(&seen[r]) && time.Now().Before(until) {
			time.Sleep(time.Millisecond)
		}
	}
	mu.Lock()
	samples := make([]int64, 0, len(wakes))
	for _, w := range wakes {
		if !written[w.round].IsZero() {
			samples = append(samples, w.at.Sub(written[w.round]).Nanoseconds())
		}
	}
	note := firstErr
	mu.Unlock()
	secs := 0.0
	if !first.IsZero() {
		secs = time.Since(first).Seconds()
	}
	o.fill(samples, secs)
	total := uint64(n * rounds)
	if o.Count < total {
		o.Errors = total - o.Count
	}
	o.Note = note
}

func main() {
	p, err := parseArgs(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	o := outcome{Contender: "go-consul-api", Workload: p.workload, Inflight: p.inflight}
	cfg := api.DefaultConfig()
	cfg.Address = p.target
	client, err := api.NewClient(cfg)
	if err != nil {
		o.Errors, o.Note = 1, err.Error()
	} else {
		value := make([]byte, p.valueSize)
		for i := range value {
			value[i] = 'v'
		}
		b := &bench{p: p, kv: client.KV(), value: value}
		if p.workload == "watch" {
			b.runWatch(&o)
		} else {
			b.runOps(&o)
		}
	}
	line, _ := json.Marshal(o)
	os.Stdout.Write(append(line, '\n'))
	os.Exit(0)
}
