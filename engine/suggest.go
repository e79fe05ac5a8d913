package engine

import (
	"strings"
	"unicode/utf8"
)

// Closest returns the candidate that name most likely misspells, for a "did
// you mean" hint: one that differs only in case, or by at most one edit (two
// for names of five characters or more), where swapping two neighbouring
// characters is one edit. It returns "" and false when no candidate is that
// close; the first of equally close candidates wins.
func Closest(name string, candidates []string) (string, bool) {
	n := utf8.RuneCountInString(name)
	limit := 1
	if n >= 5 {
		limit = 2
	}
	best, bestDist := "", limit+1
	for _, c := range candidates {
		// Lengths further apart than the limit cannot be close; checking
		// them first also keeps a huge name cheap.
		if c == name || abs(n-utf8.RuneCountInString(c)) > limit {
			continue
		}
		d := editDistance(strings.ToLower(name), strings.ToLower(c))
		if d < bestDist {
			best, bestDist = c, d
		}
	}
	return best, best != ""
}

// editDistance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and swaps of neighbours, in code
// points.
func editDistance(a, b string) int {
	x, y := []rune(a), []rune(b)
	// d[i][j] is the distance between x[:i] and y[:j].
	d := make([][]int, len(x)+1)
	for i := range d {
		d[i] = make([]int, len(y)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(x); i++ {
		for j := 1; j <= len(y); j++ {
			cost := 1
			if x[i-1] == y[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && x[i-1] == y[j-2] && x[i-2] == y[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(x)][len(y)]
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
