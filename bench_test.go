package cairn_test

import (
	"context"
	"fmt"
	"testing"

	"example.com/cairn"
	"example.com/cairn/cairntest"
)

func noop(context.Context, *cairn.Output) (any, error) { return nil, nil }

// benchRun measures whole runs of a fresh DAG on in-memory storage: the
// scheduler's and the step protocol's own overhead, without disk I/O. The
// disk-backed comparison with ninja and make is `go run ./bench`.
func benchRun(b *testing.B, n int, build func() []*cairn.Step) {
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		st := cairntest.NewStorage(b)
		steps := build()
		b.StartTimer()
		if _, err := cairn.Run(context.Background(), cairn.Steps(steps...), st.Options()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n)/1e3, "µs/step")
}

func BenchmarkRunChain1000(b *testing.B) {
	benchRun(b, 1000, func() []*cairn.Step {
		steps := cairntest.Chain("c", 1000, func(int) cairn.Func { return noop })
		return steps[len(steps)-1:]
	})
}

func BenchmarkRunFanout1000(b *testing.B) {
	benchRun(b, 1001, func() []*cairn.Step {
		root := &cairn.Step{Name: "root", Func: noop}
		steps := []*cairn.Step{root}
		for i := range 1000 {
			steps = append(steps, &cairn.Step{Name: fmt.Sprintf("leaf%d", i), Deps: []*cairn.Step{root}, Func: noop})
		}
		return steps
	})
}

func BenchmarkRunCachedFanout1000(b *testing.B) {
	st := cairntest.NewStorage(b)
	root := &cairn.Step{Name: "root", Func: noop}
	steps := []*cairn.Step{root}
	for i := range 1000 {
		steps = append(steps, &cairn.Step{Name: fmt.Sprintf("leaf%d", i), Deps: []*cairn.Step{root}, Func: noop})
	}
	if _, err := cairn.Run(context.Background(), cairn.Steps(steps...), st.Options()); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cairn.Run(context.Background(), cairn.Steps(steps...), st.Options()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(steps))/1e3, "µs/step")
}
