package builtin

import (
	"fmt"
	"strings"
)

// maxDiffCells bounds the work of the line diff (old lines × new lines):
// beyond it, a file's change is reported by size only. Config files are
// far below it; a 100 MB log written by a file step is not worth diffing.
const maxDiffCells = 4 << 20

// diffContext is how many unchanged lines surround each hunk, as diff -u.
const diffContext = 3

// unifiedDiff returns a unified diff from a to b, labelled with the file
// names, or "" when they are equal. It is a longest-common-subsequence diff
// over lines: minimal, and simple enough to trust without a dependency.
func unifiedDiff(aName, bName, a, b string) string {
	if a == b {
		return ""
	}
	al, bl := splitLines(a), splitLines(b)
	var sb strings.Builder
	fmt.Fprintf(&sb, "--- %s\n+++ %s\n", aName, bName)
	if len(al)*len(bl) > maxDiffCells {
		fmt.Fprintf(&sb, "@@ content changed: %d lines -> %d lines (too large to diff) @@\n", len(al), len(bl))
		return sb.String()
	}
	ops := diffLines(al, bl)
	// Group the ops into hunks: runs of changes with up to diffContext
	// equal lines around them, merging hunks whose context would touch.
	for i := 0; i < len(ops); {
		if ops[i].kind == ' ' {
			i++
			continue
		}
		start := max(i-diffContext, 0)
		end := i
		for end < len(ops) {
			if ops[end].kind != ' ' {
				end++
				continue
			}
			run := end
			for run < len(ops) && ops[run].kind == ' ' {
				run++
			}
			if run == len(ops) || run-end > 2*diffContext {
				end = min(end+diffContext, len(ops))
				break
			}
			end = run
		}
		writeHunk(&sb, ops[start:end])
		i = end
	}
	return sb.String()
}

type diffOp struct {
	kind       byte // ' ', '-', '+'
	line       string
	aIdx, bIdx int // 1-based line numbers in a and b, of this or the next line
}

func writeHunk(sb *strings.Builder, ops []diffOp) {
	var aCount, bCount int
	for _, op := range ops {
		if op.kind != '+' {
			aCount++
		}
		if op.kind != '-' {
			bCount++
		}
	}
	aStart, bStart := ops[0].aIdx, ops[0].bIdx
	// diff -u numbers an empty side by the line before it.
	if aCount == 0 {
		aStart--
	}
	if bCount == 0 {
		bStart--
	}
	fmt.Fprintf(sb, "@@ -%s +%s @@\n", hunkRange(aStart, aCount), hunkRange(bStart, bCount))
	for _, op := range ops {
		sb.WriteByte(op.kind)
		sb.WriteString(strings.TrimSuffix(op.line, "\n"))
		sb.WriteByte('\n')
		if !strings.HasSuffix(op.line, "\n") {
			sb.WriteString("\\ No newline at end of file\n")
		}
	}
}

func hunkRange(start, count int) string {
	if count == 1 {
		return fmt.Sprint(start)
	}
	return fmt.Sprintf("%d,%d", start, count)
}

// splitLines splits s after each newline, keeping them, so that a missing
// final newline is a difference like any other.
func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	lines := strings.SplitAfter(s, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

func diffLines(a, b []string) []diffOp {
	// lcs[i][j] is the length of the LCS of a[i:] and b[j:].
	n, m := len(a), len(b)
	lcs := make([][]int32, n+1)
	for i := range lcs {
		lcs[i] = make([]int32, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	ops := make([]diffOp, 0, n+m)
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			ops = append(ops, diffOp{' ', a[i], i + 1, j + 1})
			i, j = i+1, j+1
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			// Deletions before insertions, as diff -u shows them.
			ops = append(ops, diffOp{'-', a[i], i + 1, j + 1})
			i++
		default:
			ops = append(ops, diffOp{'+', b[j], i + 1, j + 1})
			j++
		}
	}
	return ops
}
