package doctor

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteText prints the report for a terminal: one line per step with ✓ or ✗ and its time, and under a
// failure what is wrong and what to do.
func (r Report) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "Checking %s", r.Target)
	if r.What != "" {
		fmt.Fprintf(w, " (%s)", r.What)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, s := range r.Steps {
		mark, took := "✓", fmt.Sprintf("%d ms", s.Millis)
		switch s.Status {
		case Failed:
			mark = "✗"
		case Skipped:
			mark, took = "·", ""
			s.Detail = "skipped"
		case Unused:
			mark, took = "–", ""
		}
		fmt.Fprintf(tw, "  %s %s\t%s\t%s\n", mark, s.Name, took, s.Detail)
		if s.Error != nil {
			tw.Flush()
			e := s.Error
			if e.Server != "" {
				fmt.Fprintf(w, "      The server said:  %s\n", e.Server)
			}
			fmt.Fprintf(w, "      What is wrong:    %s", e.Summary)
			if e.Code != "" {
				fmt.Fprintf(w, " [%s]", e.Code)
			}
			fmt.Fprintln(w)
			if e.Remedy != "" {
				fmt.Fprintf(w, "      What to do:       %s\n", e.Remedy)
			}
			for _, a := range e.Actions {
				fmt.Fprintf(w, "          %s\n", a)
			}
			if e.TraceID != "" {
				fmt.Fprintf(w, "      Trace ID %s, correlation ID %s (for Microsoft support)\n", e.TraceID, e.CorrelationID)
			}
		}
	}
	tw.Flush()
	for _, p := range r.Warnings {
		fmt.Fprintf(w, "  ! %s: %s\n", p.Path, p.Message)
	}
	if r.OK {
		fmt.Fprintln(w, "All checks passed.")
	} else {
		var failed []string
		for _, s := range r.Steps {
			if s.Status == Failed {
				failed = append(failed, s.Name)
			}
		}
		fmt.Fprintf(w, "Failed at: %s.\n", strings.Join(failed, ", "))
	}
	return nil
}
