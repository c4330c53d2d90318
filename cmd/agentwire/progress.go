package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress is a progress bar over a measured window, shown only when its
// writer is a terminal (CI logs and pipes stay clean). A nil *progress is
// valid and does nothing.
type progress struct {
	bar *progressbar.ProgressBar
}

// newProgress returns a bar for a run of total duration on w, or nil when w
// is not a terminal.
func newProgress(w io.Writer, total time.Duration, what string) *progress {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	bar := progressbar.NewOptions64(total.Milliseconds(),
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(what),
		progressbar.OptionSetWidth(30),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionShowDescriptionAtLineEnd(),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
	return &progress{bar: bar}
}

// update is a bench.Config.Progress callback.
func (p *progress) update(elapsed time.Duration, done int64) {
	if p == nil {
		return
	}
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(done) / s
	}
	p.bar.Describe(fmt.Sprintf("%d requests, %.0f/s", done, rate))
	_ = p.bar.Set64(elapsed.Milliseconds())
}

// finish removes the bar.
func (p *progress) finish() {
	if p == nil {
		return
	}
	_ = p.bar.Finish()
}
