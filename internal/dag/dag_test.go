package dag_test

import (
	"errors"
	"slices"
	"testing"

	"example.com/cairn/internal/dag"
)

type graph map[string][]string

func walk(g graph, root string, done map[string]bool) (order, cycle []string, err error) {
	cycle, err = dag.PostOrder(root,
		func(n string) []string { return g[n] },
		func(n string) bool { return done[n] },
		func(n string) error {
			if n == "boom" {
				return errors.New("boom")
			}
			done[n] = true
			order = append(order, n)
			return nil
		})
	return order, cycle, err
}

func TestPostOrder(t *testing.T) {
	for _, tc := range []struct {
		name      string
		g         graph
		root      string
		done      []string
		wantOrder []string
		wantCycle []string
	}{
		{"single", graph{}, "a", nil, []string{"a"}, nil},
		{"chain", graph{"c": {"b"}, "b": {"a"}}, "c", nil, []string{"a", "b", "c"}, nil},
		{"diamond visits the shared dep once", graph{"d": {"b", "c"}, "b": {"a"}, "c": {"a"}}, "d", nil, []string{"a", "b", "c", "d"}, nil},
		{"done nodes and their deps are skipped", graph{"c": {"b"}, "b": {"a"}}, "c", []string{"b"}, []string{"c"}, nil},
		{"done root", graph{"c": {"b"}}, "c", []string{"c"}, nil, nil},
		{"cycle", graph{"x": {"a"}, "a": {"b"}, "b": {"c"}, "c": {"a"}}, "x", nil, nil, []string{"a", "b", "c", "a"}},
		{"self loop", graph{"a": {"a"}}, "a", nil, nil, []string{"a", "a"}},
		{"nodes before a cycle are visited", graph{"r": {"ok", "a"}, "a": {"a"}}, "r", nil, []string{"ok"}, []string{"a", "a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done := map[string]bool{}
			for _, d := range tc.done {
				done[d] = true
			}
			order, cycle, err := walk(tc.g, tc.root, done)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(order, tc.wantOrder) || !slices.Equal(cycle, tc.wantCycle) {
				t.Errorf("PostOrder = order %v, cycle %v; want %v, %v", order, cycle, tc.wantOrder, tc.wantCycle)
			}
		})
	}
	if _, _, err := walk(graph{"r": {"boom"}}, "r", map[string]bool{}); err == nil || err.Error() != "boom" {
		t.Errorf("visit error = %v, want boom", err)
	}
}

func TestPostOrderDeepChain(t *testing.T) {
	const n = 200000
	deps := func(i int) []int {
		if i == 0 {
			return nil
		}
		return []int{i - 1}
	}
	seen := make([]bool, n)
	count := 0
	_, err := dag.PostOrder(n-1, deps, func(i int) bool { return seen[i] }, func(i int) error {
		if i != count {
			t.Fatalf("visited %d, want %d", i, count)
		}
		seen[i] = true
		count++
		return nil
	})
	if err != nil || count != n {
		t.Errorf("visited %d of %d (%v)", count, n, err)
	}
}
