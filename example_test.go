package cairn_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"example.com/cairn"
	"example.com/cairn/store"
	"example.com/cairn/store/memstore"
)

// A two-step pipeline: the second step loads the first one's typed
// artifact. Running it again finds both steps cached.
func ExampleRun() {
	ctx := context.Background()
	storage := new(store.URLMux)
	storage.Register("mem", memstore.New())

	type Corpus struct {
		Docs []string `json:"docs"`
	}
	ingest := &cairn.Step{
		Name:  "ingest",
		Attrs: map[string]any{"source": "inline"},
		Func: func(ctx context.Context, out *cairn.Output) (any, error) {
			return Corpus{Docs: []string{"a b c", "d e"}}, nil
		},
	}
	count := &cairn.Step{
		Name: "count",
		Deps: []*cairn.Step{ingest},
		Func: func(ctx context.Context, out *cairn.Output) (any, error) {
			c, err := cairn.Load[Corpus](ctx, out, ingest)
			if err != nil {
				return nil, err
			}
			n := 0
			for _, d := range c.Docs {
				n += len(strings.Fields(d))
			}
			return map[string]int{"words": n}, nil
		},
	}
	opts := &cairn.RunOptions{Prefix: "mem://example", Storage: storage, Logger: slog.New(slog.DiscardHandler)}
	for range 2 {
		report, err := cairn.Run(ctx, cairn.Steps(count), opts)
		if err != nil {
			fmt.Println(err)
			return
		}
		for _, s := range report.Steps {
			fmt.Printf("%s: %s\n", s.Step, s.Outcome)
		}
	}
	words, _ := cairn.LoadArtifact[map[string]int](ctx, storage, "mem://example", count)
	fmt.Println("words:", words["words"])
	// Output:
	// ingest_3d83572e: ran
	// count_3096a18c: ran
	// ingest_3d83572e: cached
	// count_3096a18c: cached
	// words: 5
}

// Step identity is byte-compatible with Marin's StepSpec.
func ExampleStep_ID() {
	raw := &cairn.Step{Name: "raw"}
	id, _ := raw.ID()
	path, _ := raw.OutputPath("gs://marin-us-central1")
	fmt.Println(id)
	fmt.Println(path)
	// Output:
	// raw_547180fc
	// gs://marin-us-central1/raw_547180fc
}
