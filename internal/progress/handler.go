package progress

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// Handler returns a slog.Handler that passes records to next and records
// the message of each record naming a step (a "step" attribute, as
// cairn.Output.Logger attaches) as that step's last log line on b, so
// that a Live view shows what a local step last logged.
func (b *Board) Handler(next slog.Handler) slog.Handler {
	return &stepHandler{next: next, board: b}
}

type stepHandler struct {
	next  slog.Handler
	board *Board
	step  string   // from WithAttrs
	group []string // open groups: a "step" inside one is not the step's
}

func (h *stepHandler) Enabled(ctx context.Context, lv slog.Level) bool {
	return h.next.Enabled(ctx, lv)
}

func (h *stepHandler) Handle(ctx context.Context, r slog.Record) error {
	step := h.step
	var attrs []string
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "step" && len(h.group) == 0 {
			step = a.Value.String()
		} else {
			attrs = append(attrs, fmt.Sprintf("%s=%v", a.Key, a.Value))
		}
		return true
	})
	if step != "" {
		line := r.Message
		if len(attrs) > 0 {
			line += " " + strings.Join(attrs, " ")
		}
		h.board.SetLastLog(step, clean(line))
	}
	return h.next.Handle(ctx, r)
}

func (h *stepHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(as)
	if len(h.group) == 0 {
		for _, a := range as {
			if a.Key == "step" {
				c.step = a.Value.String()
			}
		}
	}
	return &c
}

func (h *stepHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	c.group = append(h.group[:len(h.group):len(h.group)], name)
	return &c
}
