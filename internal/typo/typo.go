// Package typo finds the word a user most likely meant, for "did you
// mean" hints in the errors of configuration fields and command-line
// flags.
package typo

import "strings"

// Closest returns the candidate nearest to name, if one is near enough to
// be a likely typo: the same but for case, within an edit distance of a
// third of its length (at least 1, at most 3), or starting with name (of
// 3 bytes or more, an abbreviation: "vocab" for "vocab_size"). It returns
// "" if none is.
func Closest(name string, candidates []string) string {
	best, bestD := "", 0
	lower := strings.ToLower(name)
	for _, c := range candidates {
		if strings.EqualFold(c, name) {
			return c
		}
		d := Distance(lower, strings.ToLower(c))
		if len(name) >= 3 && strings.HasPrefix(strings.ToLower(c), lower) {
			d = 1
		}
		if limit := min(max(len(c)/3, 1), 3); d <= limit && (best == "" || d < bestD) {
			best, bestD = c, d
		}
	}
	return best
}

// Distance is the optimal-string-alignment distance between a and b, in
// bytes: insertions, deletions, substitutions and transpositions of
// adjacent bytes ("trian" is one edit from "train").
func Distance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
