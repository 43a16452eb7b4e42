// Package dag holds the graph walk shared by step identities and the
// scheduler: a post-order traversal of a node's transitive dependencies that
// does not recurse (a 100,000-step chain must not exhaust the stack) and
// reports a dependency cycle instead of looping.
package dag

// PostOrder visits root and those of its transitive dependencies that are
// not done, each after its own dependencies, and each at most once. deps
// lists a node's dependencies; done reports a node that needs no visit and
// whose dependencies need none (already visited, or known from an earlier
// walk); visit is called in post-order and must make done true for its node.
//
// If the nodes reachable from root, not counting done ones, contain a
// cycle, PostOrder stops at the first one it meets and returns it, starting
// and ending with the same node: [a b c a] for a → b → c → a. Nodes visited
// before that are unaffected (none of them lies on a cycle). If visit
// returns an error, PostOrder stops and returns it.
func PostOrder[T comparable](root T, deps func(T) []T, done func(T) bool, visit func(T) error) (cycle []T, err error) {
	if done(root) {
		return nil, nil
	}
	type frame struct {
		node T
		next int // index of the next dependency to look at
	}
	onStack := map[T]int{root: 0} // node -> its index in stack
	stack := []frame{{node: root}}
	for len(stack) > 0 {
		top := &stack[len(stack)-1]
		if ds := deps(top.node); top.next < len(ds) {
			d := ds[top.next]
			top.next++
			if done(d) {
				continue
			}
			if i, ok := onStack[d]; ok {
				for _, f := range stack[i:] {
					cycle = append(cycle, f.node)
				}
				return append(cycle, d), nil
			}
			onStack[d] = len(stack)
			stack = append(stack, frame{node: d})
			continue
		}
		n := top.node
		stack = stack[:len(stack)-1]
		delete(onStack, n)
		if err := visit(n); err != nil {
			return nil, err
		}
	}
	return nil, nil
}
