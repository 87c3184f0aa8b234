package main

import (
	"fmt"
	"io"
	"strings"
)

// progress draws a one-line progress bar on a terminal. On anything else (a file, a pipe, a test
// buffer) it draws nothing, so logs and scripts never see carriage returns.
type progress struct {
	w     io.Writer // nil: disabled
	label string
	total int
	done  int
}

// newProgress returns a bar of total steps on w, drawn only when w is a terminal and there is
// more than one step.
func newProgress(w io.Writer, label string, total int) *progress {
	p := &progress{label: label, total: total}
	if total > 1 && isTerminal(w) {
		p.w = w
		p.draw()
	}
	return p
}

// step advances the bar by one.
func (p *progress) step() {
	p.done++
	if p.w != nil {
		p.draw()
	}
}

// finish erases the bar.
func (p *progress) finish() {
	if p.w != nil {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", len(p.line())))
	}
}

func (p *progress) draw() { fmt.Fprintf(p.w, "\r%s", p.line()) }

func (p *progress) line() string {
	const width = 30
	filled := width * p.done / max(p.total, 1)
	return fmt.Sprintf("%s [%s%s] %d/%d", p.label, strings.Repeat("#", filled), strings.Repeat(".", width-filled), p.done, p.total)
}
