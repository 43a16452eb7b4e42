// Command rawsteps is the smallest cairn pipeline, written with plain
// cairn.Step values rather than package recipe's typed configs: one step
// writes a greeting, a second one counts its words.
//
//	go run ./examples/rawsteps
//
// A step's identity is a hash of its Name, Attrs and dependencies; it
// writes under ./cairn-out/NAME_HASH, and a second run finds both steps
// cached. Change "who" in Attrs to run them again.
package main

import (
	"context"
	"os"
	"strings"

	"example.com/cairn"
	"example.com/cairn/cli"
)

// Greeting is the artifact of the greet step.
type Greeting struct {
	Key string `json:"key"`
}

func main() {
	who := "world"
	greet := &cairn.Step{
		Name:  "rawsteps/greet",
		Attrs: map[string]any{"who": who}, // part of the identity
		Func: func(ctx context.Context, out *cairn.Output) (any, error) {
			if _, err := out.Bucket.Write(ctx, "greeting.txt", []byte("hello, "+who+"\n")); err != nil {
				return nil, err
			}
			return Greeting{Key: "greeting.txt"}, nil // saved as the step's artifact
		},
	}
	count := &cairn.Step{
		Name: "rawsteps/count",
		Deps: []*cairn.Step{greet},
		Func: func(ctx context.Context, out *cairn.Output) (any, error) {
			g, err := cairn.Load[Greeting](ctx, out, greet) // the dependency's typed artifact
			if err != nil {
				return nil, err
			}
			in, err := out.OpenDep(ctx, greet) // the dependency's files
			if err != nil {
				return nil, err
			}
			text, _, err := in.Read(ctx, g.Key)
			if err != nil {
				return nil, err
			}
			out.Logger.Info("counted", "words", len(strings.Fields(string(text))))
			return map[string]int{"words": len(strings.Fields(string(text)))}, nil
		},
	}
	os.Exit(cli.Main(cairn.Steps(count), nil)) // dependencies are found through Deps
}
