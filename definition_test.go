package cairn_test

import (
	"errors"
	"testing"

	"example.com/cairn"
	"example.com/cairn/cairntest"
)

// Issue 8: a step status could never list (named like a temporary file,
// or writing its control files into the prefix root) is a definition
// error: Run writes nothing and runs nothing.
func TestRunRejectsInvisibleSteps(t *testing.T) {
	for _, s := range []*cairn.Step{
		{Name: ".cairn-tmp-x"},
		{Name: "raw", OverridePath: "."},
	} {
		st := cairntest.NewStorage(t)
		var rec cairntest.Recorder
		s.Func = rec.Func("s", nil)
		ok := &cairn.Step{Name: "ok", Func: rec.Func("ok", nil)}
		_, err := run(t, st, nil, s, ok)
		if !errors.Is(err, cairn.ErrInvalidPipeline) {
			t.Errorf("Run(%+v) = %v, want ErrInvalidPipeline", s, err)
		}
		if n := len(rec.Executed()); n != 0 {
			t.Errorf("Run(%+v) ran %d step(s)", s, n)
		}
		if keys := st.Keys(t); len(keys) != 0 {
			t.Errorf("Run(%+v) wrote %v", s, keys)
		}
	}
}
