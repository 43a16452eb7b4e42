package recipecli_test

import (
	"context"
	"fmt"
	"io"
	"os"

	"example.com/cairn/cli"
	"example.com/cairn/recipe"
	"example.com/cairn/recipe/recipecli"
)

type GreetConfig struct {
	Name recipe.Versioned[string] `json:"name"`
}

func greet(ctx context.Context, c GreetConfig) error {
	fmt.Println("hello,", c.Name.Value())
	return nil
}

// A program's main is one call. Here the command line is given explicitly;
// a real program passes nil options and calls os.Exit with the result. The
// second run finds the step cached.
func ExampleMain() {
	dir, err := os.MkdirTemp("", "recipecli-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	steps := []recipe.Node{recipe.New("greet", greet, GreetConfig{Name: recipe.V("world")}, nil)}
	opts := &recipecli.Options{CLI: &cli.Options{
		Args:   []string{"--prefix", dir, "--log-level", "error"},
		Stderr: io.Discard,
	}}
	fmt.Println("exit code", recipecli.Main(steps, opts))
	fmt.Println("exit code", recipecli.Main(steps, opts))
	// Output:
	// hello, world
	// exit code 0
	// exit code 0
}
