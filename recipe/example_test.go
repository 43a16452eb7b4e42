package recipe_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"example.com/cairn"
	"example.com/cairn/recipe"
	"example.com/cairn/store"
	"example.com/cairn/store/memstore"
)

type DownloadConfig struct {
	URL    recipe.Versioned[string] `json:"url"`
	Output recipe.Output            `json:"output_path"`
}

type CountConfig struct {
	Docs    recipe.Input          `json:"docs"`
	MinLen  recipe.Versioned[int] `json:"min_len"`
	Workers int                   `json:"workers"` // not versioned
}

func download(ctx context.Context, c DownloadConfig) error {
	b, err := c.Output.Open(ctx)
	if err != nil {
		return err
	}
	_, err = b.Write(ctx, "docs/all.txt", []byte("a tiny corpus\nof two lines\n"))
	return err
}

func count(ctx context.Context, c CountConfig) (int, error) {
	b, err := c.Docs.Open(ctx)
	if err != nil {
		return 0, err
	}
	data, _, err := b.Read(ctx, "all.txt")
	n := 0
	for _, w := range strings.Fields(string(data)) {
		if len(w) >= c.MinLen.Value() {
			n++
		}
	}
	return n, err
}

// A two-step pipeline with typed configs. Changing a versioned value (the
// minimum length) re-runs only the step that holds it; changing an
// unversioned one (the workers) re-runs nothing.
func Example() {
	storage := new(store.URLMux)
	storage.Register("mem", memstore.New())
	opts := &cairn.RunOptions{Prefix: "mem://demo", Storage: storage, Logger: slog.New(slog.DiscardHandler)}

	pipeline := func(minLen, workers int) []recipe.Node {
		raw := recipe.New("raw", download, DownloadConfig{URL: recipe.V("https://example.com/corpus")}, nil)
		words := recipe.NewWithArtifact("words", count, CountConfig{
			Docs:    recipe.OutputOf(raw, "docs"),
			MinLen:  recipe.V(minLen),
			Workers: workers,
		}, nil)
		return []recipe.Node{words}
	}
	for _, p := range []struct{ minLen, workers int }{{3, 1}, {3, 8}, {4, 8}} {
		steps := pipeline(p.minLen, p.workers)
		plan, err := recipe.Resolve(opts.Prefix, steps...)
		if err != nil {
			fmt.Println(err)
			return
		}
		report, err := plan.Run(context.Background(), opts, nil)
		if err != nil {
			fmt.Println(err)
			return
		}
		path, _ := plan.OutputPath(steps[0])
		fmt.Printf("min_len=%d workers=%d: %s\n", p.minLen, p.workers, strings.TrimPrefix(path, opts.Prefix+"/"))
		for _, s := range report.Steps {
			fmt.Printf("  %s: %s\n", s.Name, s.Outcome)
		}
	}
	// Output:
	// min_len=3 workers=1: words-8d80bb
	//   raw: ran
	//   words: ran
	// min_len=3 workers=8: words-8d80bb
	//   raw: cached
	//   words: cached
	// min_len=4 workers=8: words-6bbadc
	//   raw: cached
	//   words: ran
}
