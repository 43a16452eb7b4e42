package recipe

import (
	"fmt"
	"strings"

	"example.com/cairn"
)

// ConfigError reports a step that cannot be versioned or resolved: an
// invalid name or function, a misused placeholder in its config, or a
// reference the layer cannot resolve. It satisfies
// errors.Is(err, cairn.ErrInvalidPipeline), so programs using package cli
// exit with cli.ExitInvalid.
type ConfigError struct {
	// Step is the step's name.
	Step string
	// Field locates the offending value in the config with Go syntax, for
	// example "Model.Layers[2].Input" or `Paths["train"]`; it is empty when
	// the problem is not in one field.
	Field string
	// Reason says what is wrong and, where it can, how to fix it.
	Reason string
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString("recipe: ")
	if e.Step != "" || e.Field == "" {
		fmt.Fprintf(&b, "step %q: ", e.Step)
	}
	if e.Field != "" {
		fmt.Fprintf(&b, "config field %s: ", e.Field)
	}
	b.WriteString(e.Reason)
	return b.String()
}

// Unwrap returns cairn.ErrInvalidPipeline.
func (e *ConfigError) Unwrap() error { return cairn.ErrInvalidPipeline }
