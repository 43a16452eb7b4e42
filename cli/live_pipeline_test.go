package cli_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"example.com/cairn"
)

// livePipeline is the pipeline live_test.go watches: three quick steps
// ("prep/N"), a step that fails ("broken"), and "slow", which depends on
// the quick ones, logs a line every second through its logger and runs
// until the file CAIRN_TEST_LIVE_RELEASE exists. With
// CAIRN_TEST_LIVE_STUBBORN set, slow ignores its context (it must then be
// abandoned on Ctrl-C); otherwise it stops when its context ends.
func livePipeline() []*cairn.Step {
	var preps []*cairn.Step
	for i := range 3 {
		preps = append(preps, &cairn.Step{Name: fmt.Sprintf("prep/%d", i), Attrs: map[string]int{"i": i},
			Func: func(ctx context.Context, out *cairn.Output) (any, error) { return i, nil }})
	}
	broken := &cairn.Step{Name: "broken", Func: func(ctx context.Context, out *cairn.Output) (any, error) {
		return nil, errors.New("the data is not there")
	}}
	slow := &cairn.Step{Name: "slow", Deps: preps, Func: func(ctx context.Context, out *cairn.Output) (any, error) {
		release := os.Getenv("CAIRN_TEST_LIVE_RELEASE")
		stubborn := os.Getenv("CAIRN_TEST_LIVE_STUBBORN") != ""
		for chunk := 1; ; chunk++ {
			if _, err := os.Stat(release); err == nil {
				return "trained", nil
			}
			if chunk%10 == 1 {
				out.Logger.Info("working", "chunk", chunk)
			}
			if stubborn {
				time.Sleep(100 * time.Millisecond) // deaf to ctx
				continue
			}
			select {
			case <-ctx.Done():
				return nil, context.Cause(ctx)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}}
	return append(preps, broken, slow)
}
