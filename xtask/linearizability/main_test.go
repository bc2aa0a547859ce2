package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeHistory(t *testing.T, lines ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "h.jsonl")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUnknownWritesAndFailedCasAreLinearizable(t *testing.T) {
	p := writeHistory(t,
		`{"process":0,"key":"r0","f":"write","arg":1,"invoke":0,"complete":10,"outcome":"ok"}`,
		`{"process":1,"key":"r0","f":"read","invoke":5,"complete":8,"outcome":"ok","value":null}`,
		`{"process":1,"key":"r0","f":"read","invoke":12,"complete":14,"outcome":"ok","value":1}`,
		`{"process":2,"key":"r0","f":"cas","from":1,"to":2,"invoke":15,"complete":20,"outcome":"ok","value":true}`,
		// Unknown: may take effect any time after its invocation, here after the read of 2.
		`{"process":3,"key":"r0","f":"write","arg":3,"invoke":16,"complete":null,"outcome":"unknown"}`,
		`{"process":1,"key":"r0","f":"read","invoke":30,"complete":31,"outcome":"ok","value":2}`,
		`{"process":1,"key":"r0","f":"read","invoke":32,"complete":33,"outcome":"ok","value":3}`,
		`{"process":0,"key":"r1","f":"cas","from":null,"to":4,"invoke":0,"complete":3,"outcome":"ok","value":true}`,
		`{"process":0,"key":"r1","f":"cas","from":null,"to":5,"invoke":4,"complete":6,"outcome":"ok","value":false}`,
		// Certainly not applied: left out, so the read of 4 stands.
		`{"process":0,"key":"r1","f":"write","arg":6,"invoke":7,"complete":8,"outcome":"fail","error":"connect"}`,
		`{"process":0,"key":"r1","f":"read","invoke":9,"complete":10,"outcome":"ok","value":4}`,
	)
	v := check(p, time.Minute)
	if v.Error != "" || v.Linearizable != "yes" || v.WritesLinearizable != "yes" {
		t.Fatalf("%+v", v)
	}
	if v.Ops != 11 || v.Unknown != 1 || v.Fail != 1 {
		t.Fatalf("counts %+v", v.counts)
	}
}

func TestStaleReadIsFoundAndCutShort(t *testing.T) {
	p := writeHistory(t,
		`{"process":0,"key":"r0","f":"write","arg":1,"invoke":0,"complete":10,"outcome":"ok"}`,
		`{"process":0,"key":"r0","f":"write","arg":2,"invoke":11,"complete":20,"outcome":"ok"}`,
		`{"process":4,"key":"r0","f":"read","invoke":1,"complete":2,"outcome":"ok","value":null}`,
		`{"process":1,"key":"r0","f":"read","invoke":21,"complete":22,"outcome":"ok","value":2}`,
		`{"process":2,"key":"r0","f":"read","invoke":23,"complete":25,"outcome":"ok","value":1}`,
		`{"process":1,"key":"r0","f":"read","invoke":26,"complete":27,"outcome":"ok","value":2}`,
		`{"process":0,"key":"r0","f":"write","arg":3,"invoke":28,"complete":29,"outcome":"ok"}`,
	)
	v := check(p, time.Minute)
	if v.Linearizable != "no" || v.WritesLinearizable != "yes" || v.Key != "r0" {
		t.Fatalf("%+v", v)
	}
	// The read of 2, then the read of 1: two operations suffice.
	if v.AnomalyOps != 2 {
		t.Fatalf("anomaly of %d ops, want 2", v.AnomalyOps)
	}
	if _, err := os.Stat(v.Anomaly); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(v.Visualization); err != nil {
		t.Fatal(err)
	}
}

func TestCasAppliedTwiceIsNotLinearizable(t *testing.T) {
	// Two compare-and-sets from the same value both report success: impossible on a register.
	p := writeHistory(t,
		`{"process":0,"key":"r0","f":"write","arg":1,"invoke":0,"complete":1,"outcome":"ok"}`,
		`{"process":1,"key":"r0","f":"cas","from":1,"to":2,"invoke":2,"complete":3,"outcome":"ok","value":true}`,
		`{"process":2,"key":"r0","f":"cas","from":1,"to":3,"invoke":4,"complete":5,"outcome":"ok","value":true}`,
	)
	v := check(p, time.Minute)
	if v.Linearizable != "no" || v.WritesLinearizable != "no" {
		t.Fatalf("%+v", v)
	}
}

func TestUnobservedUnknownWriteStillExplainsAFailedCas(t *testing.T) {
	// The cas can only fail if the unknown write of 2 took effect first. Nobody reads 2, so
	// the quick check without it says illegal; the verdict must come from the whole history.
	p := writeHistory(t,
		`{"process":0,"key":"r0","f":"write","arg":1,"invoke":0,"complete":1,"outcome":"ok"}`,
		`{"process":1,"key":"r0","f":"write","arg":2,"invoke":2,"complete":null,"outcome":"unknown"}`,
		`{"process":2,"key":"r0","f":"cas","from":1,"to":3,"invoke":5,"complete":6,"outcome":"ok","value":false}`,
	)
	v := check(p, time.Minute)
	if v.Linearizable != "yes" || v.WritesLinearizable != "yes" {
		t.Fatalf("%+v", v)
	}
}
